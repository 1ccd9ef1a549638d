package autograd

import (
	"fmt"

	"gorgonia.org/gorgonia"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/scan"
)

// Ids holds the token ids an Embedding gathers, or the targets a
// CrossEntropy scores, for one step (kernel.IDs): Set them before every run.
type Ids = kernel.IDs

// IgnoreIndex marks a target position that CrossEntropy leaves out.
const IgnoreIndex = kernel.IgnoreIndex

// NewIds makes a holder for n token ids in [0, vocab).
func NewIds(n, vocab int) (*Ids, error) { return kernel.NewIDs(n, vocab) }

// NewTargets makes a holder for n targets in [0, vocab) or IgnoreIndex.
func NewTargets(n, vocab int) (*Ids, error) { return kernel.NewTargets(n, vocab) }

// Resets holds the document starts of packed sequences for one step
// (kernel.Resets): Set them before every run, or leave them unset for one
// document per sequence.
type Resets = kernel.Resets

// NewResets makes a holder for the document-start flags of n tokens.
func NewResets(n int) (*Resets, error) { return kernel.NewResets(n) }

// matrix checks that the node of a is a matrix and returns its sizes.
func matrix(op string, a arg) (rows, cols int, err error) {
	if a.n == nil {
		return 0, 0, fmt.Errorf("autograd: %s: %s is nil", op, a.name)
	}
	if err := checkShape(op, a.name, a.n, -1, -1); err != nil {
		return 0, 0, err
	}
	return a.n.Shape()[0], a.n.Shape()[1], nil
}

// tokens checks that a is a token-major (batch·L, ch) matrix and returns L and ch.
func tokens(op string, batch int, a arg) (l, ch int, err error) {
	rows, ch, err := matrix(op, a)
	if err != nil {
		return 0, 0, err
	}
	if batch < 1 || rows%batch != 0 {
		return 0, 0, fmt.Errorf("autograd: %s: batch %d does not divide the %d rows of %s", op, batch, rows, a.name)
	}
	return rows / batch, ch, nil
}

// RMSNorm returns y = x / sqrt(mean(x²) + eps) ⊙ weight, the mean taken over
// each row of x (rows, d); weight is (d) (kernel.RMSNorm).
func RMSNorm(x, weight *gorgonia.Node, eps float64) (*gorgonia.Node, error) {
	xa := arg{"x", x, false}
	rows, d, err := matrix("RMSNorm", xa)
	if err != nil {
		return nil, err
	}
	return apply("RMSNorm", kernel.RMSNorm{Rows: rows, Dim: d, Eps: eps}, xa, arg{"weight", weight, false})
}

// CausalConv1d is the depthwise causal convolution over time of the Mamba
// block (kernel.Conv1d): x is (batch·L, ch) token-major, w is (ch, K), b is
// (ch) or nil, y = silu(c) with silu, else y = c. resets (batch·L flags, or
// nil) marks packed documents: no step reads a step of an earlier document.
func CausalConv1d(batch int, x, w, b *gorgonia.Node, silu bool, resets *Resets) (*gorgonia.Node, error) {
	xa := arg{"x", x, false}
	l, ch, err := tokens("CausalConv1d", batch, xa)
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, fmt.Errorf("autograd: CausalConv1d: w is nil")
	}
	if err := checkShape("CausalConv1d", "w", w, ch, -1); err != nil {
		return nil, err
	}
	s := kernel.Conv1d{Batch: batch, Len: l, Channels: ch, Width: w.Shape()[1], Bias: b != nil, SiLU: silu, Resets: resets}
	return apply("CausalConv1d", s, xa, arg{"w", w, false}, arg{"b", b, true})
}

// Embedding gathers rows of table (vocab, d): out[r] = table[ids[r]], out is
// (ids.Len(), d) (kernel.Embedding).
func Embedding(ids *Ids, table *gorgonia.Node) (*gorgonia.Node, error) {
	ta := arg{"table", table, false}
	v, d, err := matrix("Embedding", ta)
	if err != nil {
		return nil, err
	}
	return apply("Embedding", kernel.Embedding{IDs: ids, Vocab: v, Dim: d}, ta)
}

// CrossEntropy is the mean negative log-likelihood of the targets under
// softmax(logits), a scalar (kernel.CrossEntropy); logits is (rows, V).
func CrossEntropy(logits *gorgonia.Node, targets *Ids) (*gorgonia.Node, error) {
	la := arg{"logits", logits, false}
	_, v, err := matrix("CrossEntropy", la)
	if err != nil {
		return nil, err
	}
	return apply("CrossEntropy", kernel.CrossEntropy{Targets: targets, Vocab: v}, la)
}

// SelectiveScan is the selective scan of Mamba (kernel.Scan): inputs are
// token-major, rows = batch·L: u, delta, z (batch·L, ch); aLog (ch, N), with
// A = −exp(aLog); B, C (batch·L, N); D, deltaBias (ch). D, z and deltaBias
// may be nil. The output is (batch·L, ch). Of o, Softplus and Chunk are used.
// resets (batch·L flags, or nil) marks packed documents: the state is zero
// entering a document's first step.
func SelectiveScan(batch int, u, delta, aLog, B, C, D, z, deltaBias *gorgonia.Node, o scan.Options, resets *Resets) (*gorgonia.Node, error) {
	ua := arg{"u", u, false}
	l, ch, err := tokens("SelectiveScan", batch, ua)
	if err != nil {
		return nil, err
	}
	if aLog == nil {
		return nil, fmt.Errorf("autograd: SelectiveScan: aLog is nil")
	}
	if err := checkShape("SelectiveScan", "aLog", aLog, ch, -1); err != nil {
		return nil, err
	}
	s := kernel.Scan{Batch: batch, Len: l, Channels: ch, State: aLog.Shape()[1], Softplus: o.Softplus, Chunk: o.Chunk,
		D: D != nil, Z: z != nil, DeltaBias: deltaBias != nil, Resets: resets}
	return apply("SelectiveScan", s, ua, arg{"delta", delta, false}, arg{"aLog", aLog, false}, arg{"B", B, false}, arg{"C", C, false},
		arg{"D", D, true}, arg{"z", z, true}, arg{"deltaBias", deltaBias, true})
}

// Linear is y = x·w[lo:hi]ᵀ (+ bias[lo:hi]) (+ residual) for x (rows, in),
// w (out, in), bias (out) or nil, residual (rows, hi−lo) or nil
// (kernel.Linear). gorgonia.Mul cannot serve here: it treats any (n, 1) or
// (1, n) matrix as a vector, so a dt_rank or d_state of 1, or a single token,
// would change the product it computes.
func Linear(x, w, bias, residual *gorgonia.Node, lo, hi int) (*gorgonia.Node, error) {
	xa, wa := arg{"x", x, false}, arg{"w", w, false}
	rows, in, err := matrix("Linear", xa)
	if err != nil {
		return nil, err
	}
	out, _, err := matrix("Linear", wa)
	if err != nil {
		return nil, err
	}
	s := kernel.Linear{Rows: rows, In: in, Out: out, Lo: lo, Hi: hi, Bias: bias != nil, Residual: residual != nil}
	return apply("Linear", s, xa, wa, arg{"bias", bias, true}, arg{"residual", residual, true})
}

// Columns is x[:, lo:hi] for a matrix x (kernel.Columns).
func Columns(x *gorgonia.Node, lo, hi int) (*gorgonia.Node, error) {
	xa := arg{"x", x, false}
	rows, w, err := matrix("Columns", xa)
	if err != nil {
		return nil, err
	}
	return apply("Columns", kernel.Columns{Rows: rows, Width: w, Lo: lo, Hi: hi}, xa)
}

// Add is a + b for two nodes of one shape (kernel.Add).
func Add(a, b *gorgonia.Node) (*gorgonia.Node, error) {
	if a == nil || b == nil {
		return nil, fmt.Errorf("autograd: Add: an input is nil")
	}
	return apply("Add", kernel.Add{Shape: a.Shape().Clone()}, arg{"a", a, false}, arg{"b", b, false})
}

// Broadcast is the vector v (cols) repeated in rows rows (kernel.Broadcast).
func Broadcast(v *gorgonia.Node, rows int) (*gorgonia.Node, error) {
	if v == nil {
		return nil, fmt.Errorf("autograd: Broadcast: v is nil")
	}
	if err := checkShape("Broadcast", "v", v, -1); err != nil {
		return nil, err
	}
	return apply("Broadcast", kernel.Broadcast{Rows: rows, Cols: v.Shape()[0]}, arg{"v", v, false})
}

// Gate is a ⊙ silu(g) for two matrices of one shape (kernel.Gate).
func Gate(a, g *gorgonia.Node) (*gorgonia.Node, error) {
	aa := arg{"a", a, false}
	rows, cols, err := matrix("Gate", aa)
	if err != nil {
		return nil, err
	}
	return apply("Gate", kernel.Gate{Rows: rows, Cols: cols}, aa, arg{"g", g, false})
}

// MatMul is op(a)·op(b) for matrices, a transposed with transA and b with
// transB (kernel.GEMM).
func MatMul(a, b *gorgonia.Node, transA, transB bool) (*gorgonia.Node, error) {
	aa, ba := arg{"a", a, false}, arg{"b", b, false}
	ar, ac, err := matrix("MatMul", aa)
	if err != nil {
		return nil, err
	}
	br, bc, err := matrix("MatMul", ba)
	if err != nil {
		return nil, err
	}
	m, k := ar, ac
	if transA {
		m, k = ac, ar
	}
	n := bc
	if transB {
		n = br
	}
	return apply("MatMul", kernel.GEMM{M: m, N: n, K: k, TransA: transA, TransB: transB}, aa, ba)
}

// UseBLAS loads the matrix library of the products (kernel.BLAS) and says
// which it is and which kernel it runs, for the trainer to log.
func UseBLAS() string { return kernel.BLAS().String() }
