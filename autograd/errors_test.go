package autograd

import (
	"strings"
	"testing"

	"github.com/mambago/mamba/scan"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestBuildErrors checks that bad shapes, dtypes, sizes and missing inputs
// give a clear error when the op is built.
func TestBuildErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	node := func(dt tensor.Dtype, s ...int) *gorgonia.Node {
		return gorgonia.NewTensor(g, dt, len(s), gorgonia.WithShape(s...))
	}
	f32, f64 := tensor.Float32, tensor.Float64
	x, w, v3 := node(f32, 6, 4), node(f32, 4, 3), node(f32, 3)
	u, A, B, D := node(f32, 6, 4), node(f32, 4, 2), node(f32, 6, 2), node(f32, 4)
	ids, _ := NewIds(6, 8)
	big, _ := NewIds(6, 9)
	targets, _ := NewTargets(6, 8)
	short, _ := NewTargets(5, 8)
	for _, c := range []struct {
		build func() (*gorgonia.Node, error)
		want  string
	}{
		{func() (*gorgonia.Node, error) { return RMSNorm(x, v3, 1e-5) }, "RMSNorm: weight has shape (3), want (4)"},
		{func() (*gorgonia.Node, error) { return RMSNorm(x, node(f64, 4), 1e-5) }, "weight has dtype float64, want float32 like x"},
		{func() (*gorgonia.Node, error) { return RMSNorm(v3, v3, 1e-5) }, "x has shape (3), want (any, any)"},
		{func() (*gorgonia.Node, error) { return RMSNorm(x, nil, 1e-5) }, "weight is nil"},
		{func() (*gorgonia.Node, error) { return RMSNorm(x, D, 0) }, "eps 0 must be positive"},
		{func() (*gorgonia.Node, error) { return CausalConv1d(4, x, w, nil, true, nil) }, "batch 4 does not divide the 6 rows of x"},
		{func() (*gorgonia.Node, error) { return CausalConv1d(0, x, w, nil, true, nil) }, "batch 0 does not divide"},
		{func() (*gorgonia.Node, error) { return CausalConv1d(2, x, node(f32, 3, 4), nil, true, nil) }, "w has shape (3, 4), want (4, any)"},
		{func() (*gorgonia.Node, error) { return CausalConv1d(2, x, w, v3, true, nil) }, "b has shape (3), want (4)"},
		{func() (*gorgonia.Node, error) { return CausalConv1d(2, x, w, node(f64, 4), true, nil) }, "b has dtype float64"},
		{func() (*gorgonia.Node, error) { return CausalConv1d(2, nil, w, nil, true, nil) }, "x is nil"},
		{func() (*gorgonia.Node, error) { return Embedding(big, w) }, "ids vocabulary 9 is larger than the table's 4 rows"},
		{func() (*gorgonia.Node, error) { return Embedding(targets, node(f32, 8, 2)) }, "use NewIDs"},
		{func() (*gorgonia.Node, error) { return Embedding(ids, v3) }, "table has shape (3), want (any, any)"},
		{func() (*gorgonia.Node, error) { return Embedding(ids, node(tensor.Int, 8, 2)) }, "dtype int, want float32 or float64"},
		{func() (*gorgonia.Node, error) { return Embedding(nil, w) }, "IDs is nil"},
		{func() (*gorgonia.Node, error) { return CrossEntropy(node(f64, 6, 8), short) }, "logits has shape (6, 8), want (5, 8)"},
		{func() (*gorgonia.Node, error) { return CrossEntropy(node(f64, 6, 7), targets) }, "targets vocabulary 8 is larger than the 7 logits"},
		{func() (*gorgonia.Node, error) { return CrossEntropy(x, nil) }, "Targets is nil"},
		{func() (*gorgonia.Node, error) { return CrossEntropy(nil, targets) }, "logits is nil"},
		{func() (*gorgonia.Node, error) { return SelectiveScan(4, u, u, A, B, B, D, u, D, scan.Options{}, nil) }, "batch 4 does not divide the 6 rows of u"},
		{func() (*gorgonia.Node, error) {
			return SelectiveScan(2, u, u, A, node(f32, 6, 3), B, D, u, D, scan.Options{}, nil)
		}, "B has shape (6, 3), want (6, 2)"},
		{func() (*gorgonia.Node, error) { return SelectiveScan(2, u, u, A, B, B, v3, u, D, scan.Options{}, nil) }, "D has shape (3), want (4)"},
		{func() (*gorgonia.Node, error) {
			return SelectiveScan(2, u, node(f64, 6, 4), A, B, B, nil, nil, nil, scan.Options{}, nil)
		}, "delta has dtype float64"},
		{func() (*gorgonia.Node, error) {
			return SelectiveScan(2, u, u, nil, B, B, nil, nil, nil, scan.Options{}, nil)
		}, "aLog is nil"},
		{func() (*gorgonia.Node, error) {
			return SelectiveScan(2, u, u, A, B, B, D, u, D, scan.Options{Chunk: -1}, nil)
		}, "chunk -1"},
		{func() (*gorgonia.Node, error) { return Linear(x, w, nil, nil, 0, 3) }, "Linear: w has shape (4, 3), want (4, 4)"},
		{func() (*gorgonia.Node, error) { return Linear(x, node(f32, 5, 4), nil, nil, 2, 6) }, "rows [2, 6) of a weight with 5 rows"},
		{func() (*gorgonia.Node, error) { return Linear(x, node(f32, 5, 4), v3, nil, 0, 5) }, "bias has shape (3), want (5)"},
		{func() (*gorgonia.Node, error) { return Linear(x, node(f32, 5, 4), nil, x, 0, 5) }, "residual has shape (6, 4), want (6, 5)"},
		{func() (*gorgonia.Node, error) { return Columns(x, 3, 5) }, "columns [3, 5)"},
		{func() (*gorgonia.Node, error) { return Add(x, node(f32, 4, 6)) }, "b has shape (4, 6), want (6, 4)"},
		{func() (*gorgonia.Node, error) { return Gate(x, node(f64, 6, 4)) }, "g has dtype float64"},
		{func() (*gorgonia.Node, error) { return MatMul(x, x, false, false) }, "b has shape (6, 4), want (4, 4)"},
	} {
		if _, err := c.build(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
}

// TestRunErrors checks that values of the wrong shape or dtype reaching an
// op at run time give an error, not a panic.
func TestRunErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, 3))
	w := gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(3))
	y, err := RMSNorm(x, w, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	op := y.Op()
	good := tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{1, 1, 1}))
	for _, c := range []struct {
		vals []gorgonia.Value
		want string
	}{
		{[]gorgonia.Value{tensor.New(tensor.WithShape(3, 2), tensor.WithBacking(make([]float32, 6))), good}, "input 0: shape (3, 2), want (2, 3)"},
		{[]gorgonia.Value{tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(make([]float64, 6))), good}, "input 0: dtype float64, want float32"},
		{[]gorgonia.Value{gorgonia.NewF32(1), good}, "input 0: value *gorgonia.F32"},
		{[]gorgonia.Value{good}, "got 1 inputs, want 2"},
	} {
		if _, err := op.Do(c.vals...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Do: error %v, want one containing %q", err, c.want)
		}
	}
}
