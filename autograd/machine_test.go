package autograd

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mambago/mamba/internal/testutil"
)

// composedLM builds the miniature LM of composed with its cross-entropy as
// the loss (no gorgonia op in the graph) and the gradients of every input.
func composedLM(t testing.TB, dt tensor.Dtype, seed uint64) (g *gorgonia.ExprGraph, in []*gorgonia.Node, loss *gorgonia.Node, grads gorgonia.Nodes, ids, targets *Ids) {
	const batch, l, vocab, d, k, n = 2, 3, 5, 3, 2, 2
	rows := batch * l
	ids, _ = NewIds(rows, vocab)
	targets, _ = NewTargets(rows, vocab)
	if err := ids.Set([]int32{0, 3, 3, 1, 4, 2}); err != nil {
		t.Fatal(err)
	}
	if err := targets.Set([]int32{3, 3, IgnoreIndex, 4, 2, 0}); err != nil {
		t.Fatal(err)
	}
	shapes := [][]int{{vocab, d}, {d}, {d, k}, {d}, {d, n}, {rows, n}, {rows, n}, {d}, {d}}
	rng := rand.New(rand.NewPCG(seed, 1))
	g = gorgonia.NewGraph()
	for i, s := range shapes {
		in = append(in, gorgonia.NewTensor(g, dt, len(s), gorgonia.WithShape(s...), gorgonia.WithName(string(rune('a'+i))),
			gorgonia.WithValue(toValue(dt, s, randn(rng, size(s), 0.7)))))
	}
	var err error
	if loss, err = composed(ids, targets, batch)(in); err != nil {
		t.Fatal(err)
	}
	if grads, err = gorgonia.Grad(loss, in...); err != nil {
		t.Fatal(err)
	}
	return g, in, loss, grads, ids, targets
}

// TestMachineMatchesTape: the Machine computes what the TapeMachine computes,
// on float32 and float64 graphs, step after step, and runs every backward
// kernel once per step: bitwise on float64 graphs; on float32 ones, whose
// gradient sums it fuses into the backwards (adding in another order), to
// float32 rounding.
func TestMachineMatchesTape(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		g, in, loss, grads, ids, _ := composedLM(t, dt, 1)
		tape := gorgonia.NewTapeMachine(g)
		defer tape.Close()
		m, err := NewMachine(g, append(gorgonia.Nodes{loss}, grads...)...)
		if err != nil {
			t.Fatal(err)
		}
		if fused := m.Fused(); (dt == tensor.Float32) != (fused > 0) {
			t.Errorf("%v: %d gradient sums fused", dt, fused)
		}
		for step := 0; step < 3; step++ {
			if err := ids.Set([]int32{int32(step), 3, 3, 1, 4, 2}); err != nil {
				t.Fatal(err)
			}
			if err := tape.RunAll(); err != nil {
				t.Fatal(err)
			}
			want := [][]float64{fromValue(loss.Value())}
			for _, gn := range grads {
				want = append(want, fromValue(gn.Value()))
			}
			tape.Reset()
			before := backwardRuns(g)
			if err := m.Run(); err != nil {
				t.Fatal(err)
			}
			for i, n := range backwardRuns(g) {
				if n != before[i]+1 {
					t.Errorf("%v: gradient cache %d: backward ran %d times in one run", dt, i, n-before[i])
				}
			}
			for i, n := range append(gorgonia.Nodes{loss}, grads...) {
				got := machineValue(m, n)
				if dt == tensor.Float32 {
					testutil.Close(t, fmt.Sprintf("float32 step %d output %d", step, i), got, want[i], 1e-6)
				} else if !slices.Equal(got, want[i]) {
					t.Errorf("%v step %d: output %d (%v) differs from the TapeMachine's", dt, step, i, n)
				}
			}
		}
		_ = in
	}
}

func machineValue(m *Machine, n *gorgonia.Node) []float64 {
	if n.Dtype() == tensor.Float32 {
		return fromValue(tensor.New(tensor.WithShape(len(m.Float32s(n))), tensor.WithBacking(m.Float32s(n))))
	}
	return append([]float64(nil), m.Float64s(n)...)
}

// TestMachineAllocs: once warm, a run of a graph of this package's ops
// allocates nothing, whatever GOMAXPROCS is.
func TestMachineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool allocate at random")
	}
	g, _, loss, grads, _, _ := composedLM(t, tensor.Float32, 2)
	m, err := NewMachine(g, append(gorgonia.Nodes{loss}, grads...)...)
	if err != nil {
		t.Fatal(err)
	}
	if m.Fallbacks() != 0 {
		t.Errorf("%d steps run gorgonia ops", m.Fallbacks())
	}
	for _, procs := range []int{1, 2, 4} {
		old := runtime.GOMAXPROCS(procs)
		for range 2 {
			if err := m.Run(); err != nil {
				t.Fatal(err)
			}
		}
		if a := testing.AllocsPerRun(5, func() { m.Run() }); a != 0 {
			t.Errorf("GOMAXPROCS %d: %v allocations per run", procs, a)
		}
		runtime.GOMAXPROCS(old)
	}
}

// TestMachinePlan: every step but inputs and constants has a spec, each
// gradient comes after the forward of its op, and the profile names ops.
func TestMachinePlan(t *testing.T) {
	g, _, loss, grads, _, _ := composedLM(t, tensor.Float32, 3)
	m, err := NewMachine(g, append(gorgonia.Nodes{loss}, grads...)...)
	if err != nil {
		t.Fatal(err)
	}
	adds := 0
	for i, s := range m.Plan() {
		for _, j := range s.Inputs {
			if j >= i {
				t.Errorf("step %d reads step %d, which runs later", i, j)
			}
		}
		switch {
		case s.Node.Op() == nil || s.Node.Op().Arity() == 0:
			if s.Spec != nil {
				t.Errorf("step %d: input %v has a spec", i, s.Node)
			}
		case s.Spec == nil:
			t.Errorf("step %d: %v has no spec", i, s.Node)
		case s.Grad >= 0 && (s.Of < 0 || s.Of >= i || m.Plan()[s.Of].Node.Op() != s.Node.Op().(Gradient).Of()):
			t.Errorf("step %d: gradient %v does not follow its forward", i, s.Node)
		case s.Node.Op().String()[0] == '+':
			adds++
		}
	}
	if adds == 0 {
		t.Error("no gradient sums in the plan; the table and the residual stream have two paths each")
	}
	p := NewProfile()
	m.SetProfile(p)
	for range 2 {
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
	}
	names := map[string]int{}
	for _, e := range p.Entries() {
		names[e.Name] = e.Calls
	}
	for _, want := range []string{"Embedding", "RMSNorm backward", "Scan", "Scan backward", "CrossEntropy", "Add (gradient sums)"} {
		if names[want] == 0 {
			t.Errorf("profile has no calls of %q: %v", want, names)
		}
	}
}

// TestMachineFallback: gorgonia's own ops run through their Do.
func TestMachineFallback(t *testing.T) {
	c := opCases(t)[0]
	r := newRig(t, tensor.Float64, c.shapes, 1, c.apply)
	m, err := NewMachine(r.g, append(gorgonia.Nodes{r.loss}, r.grads...)...)
	if err != nil {
		t.Fatal(err)
	}
	if m.Fallbacks() == 0 {
		t.Error("the rig's loss Σ out ⊙ R uses gorgonia ops, but no step falls back to them")
	}
	_, loss, grads := r.run(t, normalVals(rand.New(rand.NewPCG(1, 1)), c.shapes))
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	if got := m.Float64s(r.loss); len(got) != 1 || got[0] != loss {
		t.Errorf("loss %v, TapeMachine %v", got, loss)
	}
	for i, gn := range r.grads {
		if !slices.Equal(m.Float64s(gn), grads[i]) {
			t.Errorf("gradient %d differs from the TapeMachine's", i)
		}
	}
}

// TestMachineBind: a bound gradient is written into the caller's buffer, the
// same values as unbound; nodes that are not gradients cannot be bound.
func TestMachineBind(t *testing.T) {
	g, in, loss, grads, _, _ := composedLM(t, tensor.Float32, 4)
	m, err := NewMachine(g, append(gorgonia.Nodes{loss}, grads...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	var want [][]float32
	for _, gn := range grads {
		want = append(want, slices.Clone(m.Float32s(gn)))
	}
	bufs := make([][]float32, len(grads))
	for i, gn := range grads {
		bufs[i] = make([]float32, len(want[i]))
		if err := m.Bind(gn, bufs[i]); err != nil {
			t.Fatalf("gradient %d: %v", i, err)
		}
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	for i := range grads {
		if !slices.Equal(bufs[i], want[i]) {
			t.Errorf("bound gradient %d differs", i)
		}
	}
	if err := m.Bind(loss, make([]float32, 1)); err == nil {
		t.Error("binding the loss: no error")
	}
	if err := m.Bind(grads[0], make([]float32, 3)); err == nil {
		t.Error("binding to a buffer of the wrong size: no error")
	}
	if err := m.Bind(in[0], make([]float64, size(in[0].Shape()))); err == nil {
		t.Error("binding an input to a float64 buffer: no error")
	}
}
