package kernel

import (
	"fmt"

	"github.com/mambago/mamba/internal/parallel"
)

// Add is out = a + b for two inputs of one shape: the residual connection
// and the sum of gradients that reach one node along several paths.
type Add struct{ Shape []int }

func (s Add) String() string  { return fmt.Sprintf("Add{shape=%v}", s.Shape) }
func (s Add) Inputs() [][]int { return [][]int{s.Shape, s.Shape} }
func (s Add) Output() []int   { return s.Shape }
func (s Add) Validate() error { return validate(s, "") }
func (s Add) CPUKernel() Kernel[[]float32] {
	k := &add32{n: Size(s.Shape)}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}
func (s Add) ReferenceKernel() Kernel[[]float64] { return addRef{} }

// elemBlock is the number of elements in one parallel block of the
// elementwise float32 kernels.
const elemBlock = 1 << 14

// add32 is the float32 kernel, parallel over fixed blocks of elements.
type add32 struct {
	n        int
	job      parallel.Job
	fwd, bwd items
	a, b, y  []float32
	din      [][]float32
}

func (k *add32) Forward(in [][]float32, out []float32) {
	k.a, k.b, k.y = in[0], in[1], out
	run(&k.job, k.fwd, blocks(k.n, elemBlock))
	k.a, k.b, k.y = nil, nil, nil
}

func (k *add32) forwardItem(_, i int) {
	lo, hi := span(i, elemBlock, k.n)
	a, b, y := k.a[lo:hi], k.b[lo:hi], k.y[lo:hi]
	for j := range y {
		y[j] = a[j] + b[j]
	}
}

// Backward: da = db = dy.
func (k *add32) Backward(_ [][]float32, dy []float32, din [][]float32) {
	k.y, k.din = dy, din
	run(&k.job, k.bwd, blocks(k.n, elemBlock))
	k.y, k.din = nil, nil
}

func (k *add32) backwardItem(_, i int) {
	lo, hi := span(i, elemBlock, k.n)
	for _, d := range k.din {
		if d != nil {
			copy(d[lo:hi], k.y[lo:hi])
		}
	}
}

type addRef struct{}

func (addRef) Forward(in [][]float64, out []float64) {
	for i := range out {
		out[i] = in[0][i] + in[1][i]
	}
}

func (addRef) Backward(_ [][]float64, dy []float64, din [][]float64) {
	for _, d := range din {
		if d != nil {
			copy(d, dy)
		}
	}
}

// Columns is out = x[:, Lo:Hi] for x (Rows, Width): one part of a product
// computed for several parts at once, such as [δ | B | C] = u·x_projᵀ.
// Backward: dx is dy in columns Lo … Hi−1 and 0 elsewhere.
type Columns struct{ Rows, Width, Lo, Hi int }

func (s Columns) String() string {
	return fmt.Sprintf("Columns{rows=%d,width=%d,lo=%d,hi=%d}", s.Rows, s.Width, s.Lo, s.Hi)
}
func (s Columns) Inputs() [][]int { return [][]int{{s.Rows, s.Width}} }
func (s Columns) Output() []int   { return []int{s.Rows, s.Hi - s.Lo} }

func (s Columns) Validate() error {
	if s.Lo < 0 || s.Hi > s.Width || s.Lo >= s.Hi {
		return fmt.Errorf("kernel: Columns: columns [%d, %d) of a width-%d matrix are not defined", s.Lo, s.Hi, s.Width)
	}
	return validate(s, "rows,width", s.Rows, s.Width)
}

func (s Columns) CPUKernel() Kernel[[]float32] {
	k := &columns32{s: s}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}
func (s Columns) ReferenceKernel() Kernel[[]float64] { return columnsRef{s} }

// copyRows is the number of rows in one parallel block of Columns and Broadcast.
const copyRows = 256

type columns32 struct {
	s        Columns
	job      parallel.Job
	fwd, bwd items
	x, y     []float32
	addX     bool // the backward adds dy to its columns of dx and leaves the others
}

func (k *columns32) Forward(in [][]float32, out []float32) {
	k.x, k.y = in[0], out
	run(&k.job, k.fwd, blocks(k.s.Rows, copyRows))
	k.x, k.y = nil, nil
}

func (k *columns32) forwardItem(_, b int) {
	lo, hi := span(b, copyRows, k.s.Rows)
	copyColumns(k.y, k.s.Hi-k.s.Lo, 0, k.x, k.s.Width, k.s.Lo, lo, hi, k.s.Hi-k.s.Lo)
}

func (k *columns32) Backward(in [][]float32, dy []float32, din [][]float32) {
	k.BackwardAdd(in, dy, din, nil)
}

// Accumulates: x (the parts of a product, each adding its columns).
func (k *columns32) Accumulates(i int) bool { return i == 0 }

func (k *columns32) BackwardAdd(_ [][]float32, dy []float32, din [][]float32, add []bool) {
	if din[0] == nil {
		return
	}
	k.x, k.y, k.addX = din[0], dy, adds(add, 0)
	run(&k.job, k.bwd, blocks(k.s.Rows, copyRows))
	k.x, k.y = nil, nil
}

func (k *columns32) backwardItem(_, b int) {
	lo, hi := span(b, copyRows, k.s.Rows)
	n := k.s.Hi - k.s.Lo
	if k.addX {
		for r := lo; r < hi; r++ {
			AddRow(k.x[r*k.s.Width+k.s.Lo:][:n], k.y[r*n:])
		}
		return
	}
	clear(k.x[lo*k.s.Width : hi*k.s.Width])
	copyColumns(k.x, k.s.Width, k.s.Lo, k.y, n, 0, lo, hi, n)
}

// copyColumns copies n columns of rows [r0, r1) from src (leading dimension
// lds, from column so) to dst (leading dimension ldd, from column do).
func copyColumns[T float32 | float64](dst []T, ldd, do int, src []T, lds, so, r0, r1, n int) {
	for r := r0; r < r1; r++ {
		copy(dst[r*ldd+do:][:n], src[r*lds+so:])
	}
}

type columnsRef struct{ s Columns }

func (k columnsRef) Forward(in [][]float64, out []float64) {
	copyColumns(out, k.s.Hi-k.s.Lo, 0, in[0], k.s.Width, k.s.Lo, 0, k.s.Rows, k.s.Hi-k.s.Lo)
}

func (k columnsRef) Backward(_ [][]float64, dy []float64, din [][]float64) {
	if din[0] != nil {
		clear(din[0])
		copyColumns(din[0], k.s.Width, k.s.Lo, dy, k.s.Hi-k.s.Lo, 0, 0, k.s.Rows, k.s.Hi-k.s.Lo)
	}
}

// Broadcast is out[r] = v for r < Rows, v (Cols): a learned vector used at
// every token (the LTI ablation's B and C). Backward: dv = Σ_r dy[r].
type Broadcast struct{ Rows, Cols int }

func (s Broadcast) String() string  { return fmt.Sprintf("Broadcast{rows=%d,cols=%d}", s.Rows, s.Cols) }
func (s Broadcast) Inputs() [][]int { return [][]int{{s.Cols}} }
func (s Broadcast) Output() []int   { return []int{s.Rows, s.Cols} }
func (s Broadcast) Validate() error { return validate(s, "rows,cols", s.Rows, s.Cols) }

func (s Broadcast) CPUKernel() Kernel[[]float32] {
	k := &broadcast32{s: s, part: make([]float32, blocks(s.Rows, copyRows)*s.Cols)}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}
func (s Broadcast) ReferenceKernel() Kernel[[]float64] { return broadcastRef{s} }

// broadcast32 is the float32 kernel; its backward sums blocks of rows, then
// the blocks in order.
type broadcast32 struct {
	s        Broadcast
	part     []float32 // (blocks, cols)
	sums     partSum
	job      parallel.Job
	fwd, bwd items
	v, y     []float32
}

func (k *broadcast32) Forward(in [][]float32, out []float32) {
	k.v, k.y = in[0], out
	run(&k.job, k.fwd, blocks(k.s.Rows, copyRows))
	k.v, k.y = nil, nil
}

func (k *broadcast32) forwardItem(_, b int) {
	lo, hi := span(b, copyRows, k.s.Rows)
	for r := lo; r < hi; r++ {
		copy(k.y[r*k.s.Cols:(r+1)*k.s.Cols], k.v)
	}
}

func (k *broadcast32) Backward(_ [][]float32, dy []float32, din [][]float32) {
	if din[0] == nil {
		return
	}
	k.y = dy
	run(&k.job, k.bwd, blocks(k.s.Rows, copyRows))
	k.y = nil
	k.sums.run(din[0], k.part)
}

func (k *broadcast32) backwardItem(_, b int) {
	c := k.s.Cols
	lo, hi := span(b, copyRows, k.s.Rows)
	part := k.part[b*c : (b+1)*c]
	clear(part)
	for r := lo; r < hi; r++ {
		for j, g := range k.y[r*c : (r+1)*c] {
			part[j] += g
		}
	}
}

type broadcastRef struct{ s Broadcast }

func (k broadcastRef) Forward(in [][]float64, out []float64) {
	for r := 0; r < k.s.Rows; r++ {
		copy(out[r*k.s.Cols:(r+1)*k.s.Cols], in[0])
	}
}

func (k broadcastRef) Backward(_ [][]float64, dy []float64, din [][]float64) {
	if din[0] == nil {
		return
	}
	clear(din[0])
	for r := 0; r < k.s.Rows; r++ {
		for j := 0; j < k.s.Cols; j++ {
			din[0][j] += dy[r*k.s.Cols+j]
		}
	}
}
