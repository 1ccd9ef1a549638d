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
