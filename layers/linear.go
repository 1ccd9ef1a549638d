package layers

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// linearOp is y = x·w[lo:hi]ᵀ for x (rows, in), w (out, in), y (rows, hi−lo):
// one GEMM with w read transposed in place, through gorgonia's current BLAS
// (OpenBLAS after autograd.UseBLAS). gorgonia.Mul cannot serve here: it
// treats any (n, 1) or (1, n) matrix as a vector, so a dt_rank or d_state of
// 1, or a single token, would change the product it computes.
//
// Backward, with g = ∂L/∂y:
//
//	∂L/∂x = g·w[lo:hi]                 (rows, in)
//	∂L/∂w[lo:hi] = gᵀ·x, 0 elsewhere    (out, in)
//
// computed by two ops that each need only their own inputs.
type linearOp struct {
	id             uint64
	dtype          tensor.Dtype
	rows, in, outW int // x is (rows, in), w is (outW, in)
	lo, hi         int
	y              tensor.Tensor // op-owned output, reused every run
}

var linearIDs atomic.Uint64

// linear applies linearOp to rows lo..hi of the weight node w.
func linear(x, w *gorgonia.Node, lo, hi int) (*gorgonia.Node, error) {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[1] || lo < 0 || hi > ws[0] || lo >= hi {
		return nil, fmt.Errorf("linear: x %v times rows [%d, %d) of w %v transposed is not defined", xs, lo, hi, ws)
	}
	if x.Dtype() != w.Dtype() || (x.Dtype() != tensor.Float32 && x.Dtype() != tensor.Float64) {
		return nil, fmt.Errorf("linear: dtypes %v and %v (want both float32 or both float64)", x.Dtype(), w.Dtype())
	}
	op := &linearOp{id: linearIDs.Add(1), dtype: x.Dtype(), rows: xs[0], in: xs[1], outW: ws[0], lo: lo, hi: hi}
	op.y = tensor.New(tensor.Of(op.dtype), tensor.WithShape(op.rows, hi-lo))
	return gorgonia.ApplyOp(op, x, w)
}

func matType() hm.Type { return gorgonia.TensorType{Dims: 2, Of: hm.TypeVariable('a')} }

func (op *linearOp) Arity() int    { return 2 }
func (op *linearOp) Type() hm.Type { return hm.NewFnType(matType(), matType(), matType()) }
func (op *linearOp) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.rows, op.hi - op.lo}, nil
}
func (op *linearOp) ReturnsPtr() bool      { return false }
func (op *linearOp) CallsExtern() bool     { return false }
func (op *linearOp) OverwritesInput() int  { return -1 }
func (op *linearOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "linear#%d", op.id) }
func (op *linearOp) Hashcode() uint32      { return hashOf(op) }
func (op *linearOp) String() string        { return fmt.Sprintf("linear#%d[%d:%d]", op.id, op.lo, op.hi) }

func (op *linearOp) Do(v ...gorgonia.Value) (gorgonia.Value, error) {
	k := op.hi - op.lo
	gemm(op.dtype, blas.NoTrans, blas.Trans, op.rows, k, op.in, v[0], 0, op.in, v[1], op.lo*op.in, op.in, op.y, 0, k)
	return op.y, nil
}

func (op *linearOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *linearOp) SymDiff(in gorgonia.Nodes, _, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&linearGrad{op: op, wrtW: false, out: tensor.New(tensor.Of(op.dtype), tensor.WithShape(op.rows, op.in))}, grad, in[1])
	if err != nil {
		return nil, err
	}
	dw, err := gorgonia.ApplyOp(&linearGrad{op: op, wrtW: true, out: tensor.New(tensor.Of(op.dtype), tensor.WithShape(op.outW, op.in))}, grad, in[0])
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{dx, dw}, nil
}

// linearGrad computes one input gradient of a linearOp from (g, the other input).
type linearGrad struct {
	op   *linearOp
	wrtW bool
	out  tensor.Tensor
}

func (g *linearGrad) Arity() int    { return 2 }
func (g *linearGrad) Type() hm.Type { return hm.NewFnType(matType(), matType(), matType()) }
func (g *linearGrad) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return g.out.Shape().Clone(), nil
}
func (g *linearGrad) ReturnsPtr() bool      { return false }
func (g *linearGrad) CallsExtern() bool     { return false }
func (g *linearGrad) OverwritesInput() int  { return -1 }
func (g *linearGrad) WriteHash(h hash.Hash) { fmt.Fprintf(h, "linearGrad#%d/%v", g.op.id, g.wrtW) }
func (g *linearGrad) Hashcode() uint32      { return hashOf(g) }
func (g *linearGrad) String() string        { return fmt.Sprintf("linearGrad#%d/w=%v", g.op.id, g.wrtW) }

func (g *linearGrad) Do(v ...gorgonia.Value) (gorgonia.Value, error) {
	op := g.op
	k := op.hi - op.lo
	if !g.wrtW { // dx (rows, in) = g (rows, k) · w[lo:hi] (k, in)
		gemm(op.dtype, blas.NoTrans, blas.NoTrans, op.rows, op.in, k, v[0], 0, k, v[1], op.lo*op.in, op.in, g.out, 0, op.in)
		return g.out, nil
	}
	// dw[lo:hi] (k, in) = gᵀ (k, rows) · x (rows, in); the other rows are 0.
	g.out.Zero()
	gemm(op.dtype, blas.Trans, blas.NoTrans, k, op.in, op.rows, v[0], 0, k, v[1], 0, op.in, g.out, op.lo*op.in, op.in)
	return g.out, nil
}

// gemm is c[co:] = op(a[ao:])·op(b[bo:]) (m×n, inner size k) on the data of
// gorgonia values, with leading dimensions lda, ldb, ldc.
func gemm(dt tensor.Dtype, ta, tb blas.Transpose, m, n, k int, a gorgonia.Value, ao, lda int, b gorgonia.Value, bo, ldb int, c gorgonia.Value, co, ldc int) {
	impl := gorgonia.WhichBLAS()
	if dt == tensor.Float32 {
		impl.Sgemm(ta, tb, m, n, k, 1, a.Data().([]float32)[ao:], lda, b.Data().([]float32)[bo:], ldb, 0, c.Data().([]float32)[co:], ldc)
		return
	}
	impl.Dgemm(ta, tb, m, n, k, 1, a.Data().([]float64)[ao:], lda, b.Data().([]float64)[bo:], ldb, 0, c.Data().([]float64)[co:], ldc)
}

func hashOf(op gorgonia.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// columnsOp is y = x[:, lo:hi] for x (rows, w), copied into the op's own
// (rows, hi−lo) buffer: it splits one product into its parts, such as
// [δ | B | C] = u·x_projᵀ computed by one GEMM. Backward: ∂L/∂x is g in
// columns lo..hi and 0 elsewhere.
type columnsOp struct {
	id      uint64
	dtype   tensor.Dtype
	rows, w int
	lo, hi  int
	y       tensor.Tensor // op-owned output, reused every run
	dx      tensor.Tensor // op-owned gradient, reused every run
	grad    bool          // the gradient op: g (rows, hi−lo) → ∂L/∂x (rows, w)
}

// columns applies columnsOp to x.
func columns(x *gorgonia.Node, lo, hi int) (*gorgonia.Node, error) {
	xs := x.Shape()
	if len(xs) != 2 || lo < 0 || hi > xs[1] || lo >= hi {
		return nil, fmt.Errorf("columns: columns [%d, %d) of x %v are not defined", lo, hi, xs)
	}
	op := &columnsOp{id: linearIDs.Add(1), dtype: x.Dtype(), rows: xs[0], w: xs[1], lo: lo, hi: hi}
	op.y = tensor.New(tensor.Of(op.dtype), tensor.WithShape(op.rows, hi-lo))
	op.dx = tensor.New(tensor.Of(op.dtype), tensor.WithShape(op.rows, op.w))
	return gorgonia.ApplyOp(op, x)
}

func (op *columnsOp) Arity() int    { return 1 }
func (op *columnsOp) Type() hm.Type { return hm.NewFnType(matType(), matType()) }
func (op *columnsOp) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	if op.grad {
		return tensor.Shape{op.rows, op.w}, nil
	}
	return tensor.Shape{op.rows, op.hi - op.lo}, nil
}
func (op *columnsOp) ReturnsPtr() bool     { return false }
func (op *columnsOp) CallsExtern() bool    { return false }
func (op *columnsOp) OverwritesInput() int { return -1 }
func (op *columnsOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "columns#%d/grad=%v", op.id, op.grad)
}
func (op *columnsOp) Hashcode() uint32 { return hashOf(op) }
func (op *columnsOp) String() string {
	return fmt.Sprintf("columns#%d[%d:%d]/grad=%v", op.id, op.lo, op.hi, op.grad)
}

// Do copies the columns out, or, as the gradient op, scatters g back.
func (op *columnsOp) Do(v ...gorgonia.Value) (gorgonia.Value, error) {
	k := op.hi - op.lo
	if op.grad {
		op.dx.Zero()
		copyColumns(op.dx, op.w, op.lo, v[0], k, 0, op.rows, k)
		return op.dx, nil
	}
	copyColumns(op.y, k, 0, v[0], op.w, op.lo, op.rows, k)
	return op.y, nil
}

func (op *columnsOp) DiffWRT(int) []bool { return []bool{true} }

func (op *columnsOp) SymDiff(_ gorgonia.Nodes, _, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	g := *op
	g.grad = true
	dx, err := gorgonia.ApplyOp(&g, grad)
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{dx}, nil
}

// copyColumns copies n columns of rows rows from src (leading dimension
// lds, from column so) to dst (leading dimension ldd, from column do).
func copyColumns(dst gorgonia.Value, ldd, do int, src gorgonia.Value, lds, so, rows, n int) {
	switch d := dst.Data().(type) {
	case []float32:
		s := src.Data().([]float32)
		for r := 0; r < rows; r++ {
			copy(d[r*ldd+do:][:n], s[r*lds+so:])
		}
	case []float64:
		s := src.Data().([]float64)
		for r := 0; r < rows; r++ {
			copy(d[r*ldd+do:][:n], s[r*lds+so:])
		}
	}
}

// addOp is y = a + b for two matrices of one shape, into the op's own
// buffer, reused every run (gorgonia's Add allocates its result each run):
// the residual connection. Backward: ∂L/∂a = ∂L/∂b = g.
type addOp struct {
	id uint64
	y  tensor.Tensor
}

// add applies addOp to a and b.
func add(a, b *gorgonia.Node) (*gorgonia.Node, error) {
	if len(a.Shape()) != 2 || !a.Shape().Eq(b.Shape()) || a.Dtype() != b.Dtype() {
		return nil, fmt.Errorf("add: %v %v and %v %v are not two matrices of one shape and dtype", a.Shape(), a.Dtype(), b.Shape(), b.Dtype())
	}
	op := &addOp{id: linearIDs.Add(1), y: tensor.New(tensor.Of(a.Dtype()), tensor.WithShape(a.Shape().Clone()...))}
	return gorgonia.ApplyOp(op, a, b)
}

func (op *addOp) Arity() int    { return 2 }
func (op *addOp) Type() hm.Type { return hm.NewFnType(matType(), matType(), matType()) }
func (op *addOp) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.y.Shape().Clone(), nil
}
func (op *addOp) ReturnsPtr() bool      { return false }
func (op *addOp) CallsExtern() bool     { return false }
func (op *addOp) OverwritesInput() int  { return -1 }
func (op *addOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "add#%d", op.id) }
func (op *addOp) Hashcode() uint32      { return hashOf(op) }
func (op *addOp) String() string        { return fmt.Sprintf("add#%d", op.id) }

func (op *addOp) Do(v ...gorgonia.Value) (gorgonia.Value, error) {
	switch y := op.y.Data().(type) {
	case []float32:
		addTo(y, v[0].Data().([]float32), v[1].Data().([]float32))
	case []float64:
		addTo(y, v[0].Data().([]float64), v[1].Data().([]float64))
	}
	return op.y, nil
}

func addTo[T float32 | float64](y, a, b []T) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

func (op *addOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *addOp) SymDiff(_ gorgonia.Nodes, _, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	return gorgonia.Nodes{grad, grad}, nil
}
