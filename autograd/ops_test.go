package autograd

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/testutil"
	"github.com/mambago/mamba/scan"
)

// opCase is one op applied to nodes of the given shapes, its inputs drawn by
// gen. The kernels' math is tested in internal/kernel; these tests check the
// graph adapters: argument order, optional inputs, gradients through
// gorgonia.Grad and the TapeMachine, float32 and float64 graphs.
type opCase struct {
	name   string
	shapes [][]int
	apply  func(in []*gorgonia.Node) (*gorgonia.Node, error)
	gen    func(r *rand.Rand, shapes [][]int) [][]float64
}

func normalVals(r *rand.Rand, shapes [][]int) [][]float64 {
	var v [][]float64
	for _, s := range shapes {
		v = append(v, randn(r, size(s), 1))
	}
	return v
}

func setRandom(t *testing.T, ids *Ids, r *rand.Rand, ignore bool) *Ids {
	t.Helper()
	v := make([]int32, ids.Len())
	for i := range v {
		v[i] = int32(r.IntN(ids.Vocab()))
		if ignore && i%4 == 1 {
			v[i] = IgnoreIndex
		}
	}
	if err := ids.Set(v); err != nil {
		t.Fatal(err)
	}
	return ids
}

func opCases(t *testing.T) []opCase {
	r := rand.New(rand.NewPCG(1, 1))
	ids, _ := NewIds(7, 5)
	setRandom(t, ids, r, false)
	targets, _ := NewTargets(6, 4)
	setRandom(t, targets, r, true)
	return []opCase{
		{"RMSNorm", [][]int{{5, 4}, {4}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return RMSNorm(in[0], in[1], 1e-5) }, normalVals},
		{"CausalConv1d", [][]int{{10, 3}, {3, 4}, {3}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
			return CausalConv1d(2, in[0], in[1], in[2], true, nil)
		}, normalVals},
		{"CausalConv1d/nobias", [][]int{{6, 2}, {2, 2}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
			return CausalConv1d(3, in[0], in[1], nil, false, nil)
		}, normalVals},
		{"Embedding", [][]int{{6, 3}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Embedding(ids, in[0]) }, normalVals},
		{"CrossEntropy", [][]int{{6, 5}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return CrossEntropy(in[0], targets) }, normalVals},
		{"SelectiveScan", [][]int{{10, 3}, {10, 3}, {3, 2}, {10, 2}, {10, 2}, {3}, {10, 3}, {3}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
			return SelectiveScan(2, in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], scan.Options{Softplus: true, Chunk: 2}, nil)
		}, normalVals},
		{"SelectiveScan/plain", [][]int{{6, 2}, {6, 2}, {2, 3}, {6, 3}, {6, 3}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
			return SelectiveScan(3, in[0], in[1], in[2], in[3], in[4], nil, nil, nil, scan.Options{Softplus: true}, nil)
		}, normalVals},
		{"Linear", [][]int{{5, 3}, {6, 3}, {6}, {5, 2}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
			return Linear(in[0], in[1], in[2], in[3], 3, 5)
		}, normalVals},
		{"Linear/plain", [][]int{{1, 1}, {1, 1}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
			return Linear(in[0], in[1], nil, nil, 0, 1)
		}, normalVals},
		{"Columns", [][]int{{4, 5}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Columns(in[0], 1, 4) }, normalVals},
		{"Add", [][]int{{4, 5}, {4, 5}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Add(in[0], in[1]) }, normalVals},
		{"Broadcast", [][]int{{3}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Broadcast(in[0], 4) }, normalVals},
		{"Gate", [][]int{{3, 4}, {3, 4}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Gate(in[0], in[1]) }, normalVals},
		{"MatMul", [][]int{{3, 4}, {5, 4}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return MatMul(in[0], in[1], false, true) }, normalVals},
		{"MatMul/TN", [][]int{{4, 3}, {4, 5}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return MatMul(in[0], in[1], true, false) }, normalVals},
	}
}

// TestOps checks every op's graph gradients against finite differences of
// the float64 graph, and the float32 graph against the float64 one.
func TestOps(t *testing.T) {
	for i, c := range opCases(t) {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i), 2))
			r64 := newRig(t, tensor.Float64, c.shapes, uint64(i), c.apply)
			checkGradFD(t, r64, func() [][]float64 { return c.gen(r, c.shapes) }, 1e-6)
			r32 := newRig(t, tensor.Float32, c.shapes, uint64(i), c.apply)
			checkFloat32(t, r32, r64, c.gen(r, c.shapes), 1e-5)
		})
	}
}

// TestSpecs: every forward node exposes the spec its kernel was built from
// and every gradient node the same spec, its input and its forward op.
func TestSpecs(t *testing.T) {
	c := opCases(t)[0]
	r := newRig(t, tensor.Float32, c.shapes, 1, c.apply)
	want := kernel.RMSNorm{Rows: 5, Dim: 4, Eps: 1e-5}
	f, ok := r.out.Op().(Forward)
	if !ok || f.Spec() != want {
		t.Fatalf("forward op %v: spec %v, want %v", r.out.Op(), f, want)
	}
	for i, g := range r.grads {
		op, ok := g.Op().(Gradient)
		if !ok || op.Spec() != want || op.Which() != i || op.Of() != f {
			t.Errorf("gradient %d: op %v does not name spec %v, input %d and its forward op", i, g.Op(), want, i)
		}
	}
}

// TestScanAgainstKernel runs a graph with the scan twice on new inputs and
// checks that the backward kernel ran exactly once per step (the rig does)
// and that output and gradients equal the reference kernel's own, bitwise.
func TestScanAgainstKernel(t *testing.T) {
	c := opCases(t)[5]
	r := newRig(t, tensor.Float64, c.shapes, 36, c.apply)
	rng := rand.New(rand.NewPCG(34, 35))
	s := r.out.Op().(Forward).Spec()
	for step := 0; step < 2; step++ {
		v := c.gen(rng, c.shapes)
		out, _, grads := r.run(t, v)
		k, err := kernel.Reference{}.New(s)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, len(out))
		k.Forward(v, want)
		d := make([][]float64, len(v))
		for i := range v {
			d[i] = make([]float64, len(v[i]))
		}
		k.Backward(v, r.w, d)
		if !slices.Equal(out, want) {
			t.Errorf("step %d: output differs from the kernel's", step)
		}
		for i := range d {
			if !slices.Equal(grads[i], d[i]) {
				t.Errorf("step %d: gradient of input %d differs from the kernel's backward", step, i)
			}
		}
	}
}

// TestIdsPerStep checks that the graph reads the ids held at each run, and
// that an unset holder is an error from RunAll, not a panic.
func TestIdsPerStep(t *testing.T) {
	ids, _ := NewIds(2, 3)
	r := newRig(t, tensor.Float64, [][]int{{3, 2}}, 1, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Embedding(ids, in[0]) })
	table := []float64{1, 2, 3, 4, 5, 6}
	gorgonia.Let(r.in[0], toValue(tensor.Float64, []int{3, 2}, table))
	if err := r.m.RunAll(); err == nil || !strings.Contains(err.Error(), "never Set") {
		t.Errorf("RunAll with unset ids: error %v, want one saying the ids were never Set", err)
	}
	r.m.Reset()
	for _, c := range []struct {
		ids  []int32
		want []float64
	}{{[]int32{2, 0}, []float64{5, 6, 1, 2}}, {[]int32{1, 1}, []float64{3, 4, 3, 4}}} {
		if err := ids.Set(c.ids); err != nil {
			t.Fatal(err)
		}
		out, _, _ := r.run(t, [][]float64{table})
		testutil.CloseAbs(t, "embedding", out, c.want, 0)
	}
}

// TestApply: any spec goes into a graph through Apply, its inputs checked
// against the spec.
func TestApply(t *testing.T) {
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(3, 4))
	w := gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(4))
	s := kernel.RMSNorm{Rows: 3, Dim: 4, Eps: 1e-5}
	n, err := Apply(s, x, w)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Op().(Forward).Spec(); got != s {
		t.Errorf("spec %v, want %v", got, s)
	}
	if _, err := Apply(s, w, w); err == nil || !strings.Contains(err.Error(), "input 0 has shape (4), want (3, 4)") {
		t.Errorf("Apply with a wrong shape: %v", err)
	}
	if _, err := Apply(s, x); err == nil {
		t.Error("Apply with a missing input: no error")
	}
}
