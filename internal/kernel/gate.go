package kernel

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/parallel"
)

// Gate is out = a ⊙ silu(g) = a ⊙ g ⊙ σ(g) over two (Rows, Cols) inputs a
// and g: the Mamba block's output gate and the SwiGLU of a Transformer++.
type Gate struct{ Rows, Cols int }

func (s Gate) String() string                     { return fmt.Sprintf("Gate{rows=%d,cols=%d}", s.Rows, s.Cols) }
func (s Gate) Inputs() [][]int                    { return [][]int{{s.Rows, s.Cols}, {s.Rows, s.Cols}} }
func (s Gate) Output() []int                      { return []int{s.Rows, s.Cols} }
func (s Gate) Validate() error                    { return validate(s, "rows,cols", s.Rows, s.Cols) }
func (s Gate) elems() (n int)                     { return s.Rows * s.Cols }
func (s Gate) ReferenceKernel() Kernel[[]float64] { return gateRef{} }

// GateRow writes out = a ⊙ silu(g) for one row: the float32 kernel's row,
// which the decoder calls too. out may be a or g.
func GateRow(out, a, g []float32) {
	a, out = a[:len(g)], out[:len(g)]
	var sg [gateRow]float32
	for lo := 0; lo < len(g); lo += gateRow {
		hi := min(len(g), lo+gateRow)
		math32.SiLURow(sg[:hi-lo], g[lo:hi])
		for i, v := range sg[:hi-lo] {
			out[lo+i] = a[lo+i] * v
		}
	}
}

// gateRow is the number of elements of one piece of a row, whose silu (and
// derivative) the kernel keeps on the stack.
const gateRow = 256

// gateBlock is the number of elements in one parallel block of the float32 kernel.
const gateBlock = 1 << 14

func (s Gate) CPUKernel() Kernel[[]float32] {
	k := &gate32{s: s}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}

// gate32 is the float32 kernel, parallel over fixed blocks of elements. The
// backward recomputes silu(g) and its derivative (math32's vector rows).
type gate32 struct {
	s        Gate
	job      parallel.Job
	fwd, bwd items
	in       [][]float32
	out, dy  []float32
	din      [][]float32
}

func (k *gate32) Forward(in [][]float32, out []float32) {
	k.in, k.out = in, out
	run(&k.job, k.fwd, blocks(k.s.elems(), gateBlock))
	k.in, k.out = nil, nil
}

func (k *gate32) forwardItem(_, b int) {
	lo, hi := span(b, gateBlock, k.s.elems())
	GateRow(k.out[lo:hi], k.in[0][lo:hi], k.in[1][lo:hi])
}

// Backward: with s = σ(g), d silu(g)/dg = s·(1 + g·(1 − s)):
//
//	da = dy ⊙ g·s,  dg = dy ⊙ a ⊙ s·(1 + g·(1 − s))
func (k *gate32) Backward(in [][]float32, dy []float32, din [][]float32) {
	k.in, k.dy, k.din = in, dy, din
	run(&k.job, k.bwd, blocks(k.s.elems(), gateBlock))
	k.in, k.dy, k.din = nil, nil, nil
}

func (k *gate32) backwardItem(_, b int) {
	lo, hi := span(b, gateBlock, k.s.elems())
	var sg, ds [gateRow]float32
	for p := lo; p < hi; p += gateRow {
		q := min(hi, p+gateRow)
		a, g, dy := k.in[0][p:q], k.in[1][p:q], k.dy[p:q]
		math32.SiLUGradRow(sg[:q-p], ds[:q-p], g)
		if da := k.din[0]; da != nil {
			for i, v := range sg[:q-p] {
				da[p+i] = dy[i] * v
			}
		}
		if dg := k.din[1]; dg != nil {
			for i, v := range ds[:q-p] {
				dg[p+i] = dy[i] * a[i] * v
			}
		}
	}
}

// gateRef is the float64 reference.
type gateRef struct{}

func (gateRef) Forward(in [][]float64, out []float64) {
	for i, g := range in[1] {
		out[i] = in[0][i] * g / (1 + math.Exp(-g))
	}
}

func (gateRef) Backward(in [][]float64, dy []float64, din [][]float64) {
	for i, g := range in[1] {
		s := 1 / (1 + math.Exp(-g))
		if din[0] != nil {
			din[0][i] = dy[i] * g * s
		}
		if din[1] != nil {
			din[1][i] = dy[i] * in[0][i] * s * (1 + g*(1-s))
		}
	}
}
