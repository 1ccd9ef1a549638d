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

// GateRow writes out = a ⊙ silu(g) for one row (silu from math32.SiLURow):
// the float32 kernel's row, which the decoder calls too. out may be g, not a.
func GateRow(out, a, g []float32) {
	a, out = a[:len(g)], out[:len(g)]
	math32.SiLURow(out, g)
	for i := range out {
		out[i] *= a[i]
	}
}

// gateBlock is the number of elements in one parallel block of the float32 kernel.
const gateBlock = 1 << 14

func (s Gate) CPUKernel() Kernel[[]float32] {
	k := &gate32{s: s}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}

// gate32 is the float32 kernel, parallel over fixed blocks of elements. The
// backward recomputes silu(g) and its derivative (math32.SiLUGradRow) into a
// scratch of two blocks per worker slot.
type gate32 struct {
	s        Gate
	job      parallel.Job
	fwd, bwd items
	in       [][]float32
	out, dy  []float32
	din      [][]float32
	scratch  [][]float32 // per worker slot: silu(g) and silu'(g) of a block
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
	n := blocks(k.s.elems(), gateBlock)
	for w := parallel.Workers(n, 0); len(k.scratch) < w; {
		k.scratch = append(k.scratch, make([]float32, 2*min(gateBlock, k.s.elems())))
	}
	k.job.Run(k.bwd, n, len(k.scratch))
	k.in, k.dy, k.din = nil, nil, nil
}

func (k *gate32) backwardItem(w, b int) {
	lo, hi := span(b, gateBlock, k.s.elems())
	a, g, dy := k.in[0][lo:hi], k.in[1][lo:hi], k.dy[lo:hi]
	half := len(k.scratch[w]) / 2
	y, d := k.scratch[w][:hi-lo], k.scratch[w][half:][:hi-lo]
	math32.SiLUGradRow(y, d, g)
	if da := k.din[0]; da != nil {
		for i, v := range y {
			da[lo+i] = dy[i] * v
		}
	}
	if dg := k.din[1]; dg != nil {
		for i, v := range d {
			dg[lo+i] = dy[i] * a[i] * v
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
