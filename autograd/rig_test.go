package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
	"github.com/mambago/mamba/scan"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// rig is a compiled graph loss = Σ op(inputs) ⊙ R with a random upstream
// weight R, the gradients of loss wrt every input, and a TapeMachine. It is
// run step after step like a trainer runs its graph.
type rig struct {
	g      *gorgonia.ExprGraph
	in     []*gorgonia.Node
	out    *gorgonia.Node
	loss   *gorgonia.Node
	grads  gorgonia.Nodes
	m      gorgonia.VM
	dt     tensor.Dtype
	shapes [][]int
	w      []float64 // R
}

// newRig builds the graph in dtype dt; apply builds the op under test.
func newRig(t testing.TB, dt tensor.Dtype, shapes [][]int, seed uint64, apply func(in []*gorgonia.Node) (*gorgonia.Node, error)) *rig {
	t.Helper()
	r := &rig{g: gorgonia.NewGraph(), dt: dt, shapes: shapes}
	for i, s := range shapes {
		r.in = append(r.in, gorgonia.NewTensor(r.g, dt, len(s), gorgonia.WithShape(s...), gorgonia.WithName(string(rune('a'+i)))))
	}
	var err error
	if r.out, err = apply(r.in); err != nil {
		t.Fatalf("building the op: %v", err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	os := r.out.Shape()
	w := make([]float64, max(1, os.TotalSize()))
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	r.w = w
	if len(os) == 0 {
		c := gorgonia.NewScalar(r.g, dt, gorgonia.WithName("R"), gorgonia.WithValue(scalarValue(dt, w[0])))
		r.loss = gorgonia.Must(gorgonia.Mul(r.out, c))
	} else {
		c := gorgonia.NewTensor(r.g, dt, len(os), gorgonia.WithShape(os...), gorgonia.WithName("R"), gorgonia.WithValue(toValue(dt, os, w)))
		r.loss = gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(r.out, c))))
	}
	if r.grads, err = gorgonia.Grad(r.loss, r.in...); err != nil {
		t.Fatalf("Grad: %v", err)
	}
	r.m = gorgonia.NewTapeMachine(r.g)
	t.Cleanup(func() { r.m.Close() })
	return r
}

// run does one step on the given input values and returns the op's output,
// the loss and every input gradient. It checks that every fused op's backward
// kernel ran exactly once.
func (r *rig) run(t testing.TB, vals [][]float64) (out []float64, loss float64, grads [][]float64) {
	t.Helper()
	for i, v := range vals {
		if err := gorgonia.Let(r.in[i], toValue(r.dt, r.shapes[i], v)); err != nil {
			t.Fatalf("Let: %v", err)
		}
	}
	before := backwardRuns(r.g)
	if err := r.m.RunAll(); err != nil {
		t.Fatalf("RunAll: %v", err)
	}
	defer r.m.Reset()
	for i, n := range backwardRuns(r.g) {
		if n != before[i]+1 {
			t.Fatalf("gradient cache %d: backward ran %d times in one step, want 1", i, n-before[i])
		}
	}
	out = fromValue(r.out.Value())
	loss = fromValue(r.loss.Value())[0]
	for _, gn := range r.grads {
		grads = append(grads, fromValue(gn.Value()))
	}
	return out, loss, grads
}

// backwardRuns lists the backward kernel run counts of the graph's gradient caches.
func backwardRuns(g *gorgonia.ExprGraph) []int {
	seen := map[any]bool{}
	var runs []int
	for _, n := range g.AllNodes() {
		var c any
		var k int
		switch op := n.Op().(type) {
		case *gradOp[float32]:
			c, k = op.c, op.c.runs
		case *gradOp[float64]:
			c, k = op.c, op.c.runs
		default:
			continue
		}
		if !seen[c] {
			seen[c] = true
			runs = append(runs, k)
		}
	}
	return runs
}

// checkGradFD checks, in a float64 rig, the graph's gradients at two random
// points against central differences of the loss, then checks that running
// the first point again gives the same gradients (nothing accumulates).
func checkGradFD(t *testing.T, r *rig, gen func() [][]float64, tol float64) {
	t.Helper()
	var first [][]float64
	var firstVals [][]float64
	for step := 0; step < 2; step++ {
		vals := gen()
		_, _, grads := r.run(t, vals)
		if step == 0 {
			first, firstVals = grads, vals
		}
		const h = 1e-6
		for i := range vals {
			num := make([]float64, len(vals[i]))
			for j := range vals[i] {
				x := vals[i][j]
				vals[i][j] = x + h
				_, lp, _ := r.run(t, vals)
				vals[i][j] = x - h
				_, lm, _ := r.run(t, vals)
				vals[i][j] = x
				num[j] = (lp - lm) / (2 * h)
			}
			e := testutil.MaxAbs(grads[i], num) / math.Max(1, maxAbs(num))
			testutil.CheckErr(t, fmt.Sprintf("step %d: gradient of input %d vs finite differences (max abs error / max(1, max |fd|))", step, i), e, tol)
		}
	}
	_, _, again := r.run(t, firstVals)
	for i := range again {
		if !slices.Equal(again[i], first[i]) {
			t.Errorf("gradient of input %d changed when the first step was run again", i)
		}
	}
}

// checkFloat32 runs the float32 graph (fast kernels) and the float64 graph
// (reference kernels) on the same values and compares output, loss and
// gradients by relative L2 error. It also checks that the float32 results are
// bitwise the same with GOMAXPROCS 1 and 3.
func checkFloat32(t *testing.T, r32, r64 *rig, vals [][]float64, tol float64) {
	t.Helper()
	o64, l64, g64 := r64.run(t, vals)
	o32, l32, g32 := r32.run(t, round32(vals))
	testutil.Close(t, "output, float32 vs float64", o32, o64, tol)
	scale := 0.0 // Σ|out·R|: the float32 Sum in the loss has error ~ eps32·scale
	for i, o := range o64 {
		scale += math.Abs(o * r64.w[i])
	}
	testutil.CheckErr(t, "loss, float32 vs float64, relative to Σ|out·R|", math.Abs(l32-l64)/math.Max(scale, 1e-30), tol)
	for i := range g64 {
		testutil.Close(t, fmt.Sprintf("gradient of input %d, float32 vs float64", i), g32[i], g64[i], tol)
	}
	for _, procs := range []int{1, 3} {
		old := runtime.GOMAXPROCS(procs)
		o, l, g := r32.run(t, round32(vals))
		runtime.GOMAXPROCS(old)
		if !slices.Equal(o, o32) || l != l32 {
			t.Errorf("GOMAXPROCS %d: float32 output differs", procs)
		}
		for i := range g {
			if !slices.Equal(g[i], g32[i]) {
				t.Errorf("GOMAXPROCS %d: float32 gradient of input %d differs", procs, i)
			}
		}
	}
}

func size(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func round32(vals [][]float64) [][]float64 {
	r := make([][]float64, len(vals))
	for i, v := range vals {
		r[i] = testutil.Convert[float64](testutil.Convert[float32](v))
	}
	return r
}

func randn(rng *rand.Rand, n int, scale float64) []float64 { return testutil.Normals(rng, n, scale) }

func maxAbs(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

func toValue(dt tensor.Dtype, shape []int, v []float64) gorgonia.Value {
	if dt == tensor.Float32 {
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(testutil.Convert[float32](v)))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), v...)))
}

func scalarValue(dt tensor.Dtype, x float64) gorgonia.Value {
	if dt == tensor.Float32 {
		return gorgonia.NewF32(float32(x))
	}
	return gorgonia.NewF64(x)
}

func fromValue(v gorgonia.Value) []float64 {
	switch x := v.(type) {
	case *gorgonia.F32:
		return []float64{float64(*x)}
	case *gorgonia.F64:
		return []float64{float64(*x)}
	case *tensor.Dense:
		switch d := x.Data().(type) {
		case []float32:
			return testutil.Convert[float64](d)
		case []float64:
			return append([]float64(nil), d...)
		case float32:
			return []float64{float64(d)}
		case float64:
			return []float64{d}
		}
	}
	panic("fromValue: unexpected value type")
}

// composed is a miniature Mamba LM built from every op of the package, with
// the embedding table tied to the head (its gradient sums two paths):
//
//	h = Embedding(table); x = RMSNorm(h); c = CausalConv1d(x)
//	y = SelectiveScan(u = c, δ = x, A_log, B, C, D, z = x, bias); logits = Linear(y + h, table)
//	loss = CrossEntropy(logits)
func composed(ids, targets *Ids, batch int) func(in []*gorgonia.Node) (*gorgonia.Node, error) {
	return func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		table, wn, cw, cb, aLog, B, C, D, bias := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8]
		h, err := Embedding(ids, table)
		if err != nil {
			return nil, err
		}
		x, err := RMSNorm(h, wn, 1e-5)
		if err != nil {
			return nil, err
		}
		c, err := CausalConv1d(batch, x, cw, cb, true, nil)
		if err != nil {
			return nil, err
		}
		y, err := SelectiveScan(batch, c, x, aLog, B, C, D, x, bias, scan.Options{Softplus: true, Chunk: 2}, nil)
		if err != nil {
			return nil, err
		}
		res, err := Add(y, h)
		if err != nil {
			return nil, err
		}
		logits, err := Linear(res, table, nil, nil, 0, table.Shape()[0])
		if err != nil {
			return nil, err
		}
		return CrossEntropy(logits, targets)
	}
}

func TestComposedGradFD(t *testing.T) {
	const batch, l, vocab, d, k, n = 2, 3, 5, 3, 2, 2
	rows := batch * l
	ids, _ := NewIds(rows, vocab)
	targets, _ := NewTargets(rows, vocab)
	if err := ids.Set([]int32{0, 3, 3, 1, 4, 2}); err != nil {
		t.Fatal(err)
	}
	if err := targets.Set([]int32{3, 3, IgnoreIndex, 4, 2, 0}); err != nil {
		t.Fatal(err)
	}
	shapes := [][]int{{vocab, d}, {d}, {d, k}, {d}, {d, n}, {rows, n}, {rows, n}, {d}, {d}}
	rng := rand.New(rand.NewPCG(41, 42))
	gen := func() [][]float64 {
		var v [][]float64
		for i, s := range shapes {
			x := randn(rng, size(s), 1)
			if i == 4 { // A_log
				for j := range x {
					x[j] *= 0.5
				}
			}
			v = append(v, x)
		}
		return v
	}
	r := newRig(t, tensor.Float64, shapes, 43, composed(ids, targets, batch))
	checkGradFD(t, r, gen, 1e-6)
	r32 := newRig(t, tensor.Float32, shapes, 43, composed(ids, targets, batch))
	checkFloat32(t, r32, r, gen(), 1e-5)
}

// TestDualValues runs the composed graph the other way a trainer may: with
// BindDualValues, reading x.Grad() and zeroing the dual values after each
// step. The gradients must equal those of the gradient nodes, step after step.
func TestDualValues(t *testing.T) {
	const batch, l, vocab, d, k, n = 2, 3, 5, 3, 2, 2
	rows := batch * l
	ids, _ := NewIds(rows, vocab)
	targets, _ := NewTargets(rows, vocab)
	shapes := [][]int{{vocab, d}, {d}, {d, k}, {d}, {d, n}, {rows, n}, {rows, n}, {d}, {d}}
	want := newRig(t, tensor.Float32, shapes, 51, composed(ids, targets, batch))
	r := newRig(t, tensor.Float32, shapes, 51, composed(ids, targets, batch))
	r.m.Close()
	r.m = gorgonia.NewTapeMachine(r.g, gorgonia.BindDualValues(r.in...))
	rng := rand.New(rand.NewPCG(52, 53))
	for step := 0; step < 3; step++ {
		if err := ids.Set([]int32{int32(step), 3, 3, 1, 4, 2}); err != nil {
			t.Fatal(err)
		}
		if err := targets.Set([]int32{3, int32(step), IgnoreIndex, 4, 2, 0}); err != nil {
			t.Fatal(err)
		}
		vals := make([][]float64, len(shapes))
		for i, s := range shapes {
			vals[i] = randn(rng, size(s), 1)
		}
		_, _, g := want.run(t, vals)
		r.run(t, vals)
		for i, in := range r.in {
			dv, err := in.Grad()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fromValue(dv), g[i]) {
				t.Errorf("step %d: dual value of input %d differs from its gradient node", step, i)
			}
			dv.(*tensor.Dense).Zero()
		}
	}
}
