package layers

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/mambago/mamba/internal/testutil"
)

var tensorFloat64 = tensor.Float64

// TestFixtureTrain checks the float32 training graph against transformers:
// logits, loss (labels = input_ids shifted inside the loss) and the gradient
// of every parameter.
func TestFixtureTrain(t *testing.T) {
	for _, dir := range fixtureDirs(t, "hf_*") {
		m, fx := loadHFFixture(t, dir)
		t.Run(fx.name, func(t *testing.T) { checkFixtureTrain(t, m, fx) })
	}
}

// checkFixtureTrain runs one Step of m on a fixture's ids and checks the logits (≤ 1e-4 relative
// L2), the loss (≤ 1e-5 absolute) and every parameter's gradient (≤ 1e-3 relative L2, against
// grad.<name>), and that Eval's loss equals Step's.
func checkFixtureTrain(t *testing.T, m LM, fx *hfFixture) {
	t.Helper()
	tr, err := m.Compile(fx.batch, fx.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	tg := shiftedTargets(fx.ids, fx.batch, fx.seqLen)
	loss, err := tr.Step(fx.ids, tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := testutil.RelL2(tr.Logits(), fx.logits)
	testutil.CheckErr(t, "logits relative L2", e, 1e-4)
	testutil.CheckErr(t, "loss absolute error", math.Abs(loss-fx.loss), 1e-5)
	worst, worstName := 0.0, ""
	for _, p := range m.Params() {
		want, _, err := fx.ref.Float64("grad." + p.Name)
		if err != nil {
			t.Fatal(err)
		}
		ge := testutil.RelL2(p.Grad, want)
		testutil.CheckErr(t, "grad "+p.Name+" relative L2", ge, 1e-3)
		if !(ge <= worst) {
			worst, worstName = ge, p.Name
		}
	}
	t.Logf("logits: relative L2 %.3g; loss |Δ| %.2g; worst gradient %s, relative L2 %.3g", e, math.Abs(loss-fx.loss), worstName, worst)
	ev, err := tr.Eval(fx.ids, tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev != loss {
		t.Errorf("Eval loss %.9g differs from Step loss %.9g", ev, loss)
	}
}

// checkFixtureGreedy checks that m's greedy generation continues the fixture's prompt with its
// tokens exactly.
func checkFixtureGreedy(t *testing.T, m LM, fx *hfFixture) {
	t.Helper()
	got, err := m.Generate(fx.prompt, 1, len(fx.greedy)-len(fx.prompt), Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	if want := fx.greedy[len(fx.prompt):]; !slices.Equal(got, want) {
		t.Errorf("greedy generation\n got %v\nwant %v", got, want)
	}
}

// variants are small random models covering every optional part.
var variants = []struct {
	name string
	edit func(*Config)
}{
	{"selective", func(c *Config) {}},
	{"biases", func(c *Config) { c.Bias, c.ConvBias, c.DConv, c.DtRank = true, false, 2, 3 }},
	{"lti", func(c *Config) { c.Selective, c.Bias, c.DConv = false, true, 5 }},
}

func variantModel(t *testing.T, edit func(*Config)) *Model {
	t.Helper()
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer, c.DState = 21, 12, 2, 3
	edit(&c)
	m, err := New(c, 5)
	if err != nil {
		t.Fatal(err)
	}
	perturb(m, 9)
	return m
}

// randomTargets are random ids with about one in five ignored.
func randomTargets(n, vocab int, seed uint64) []int32 {
	tg := randomIDs(n, vocab, seed)
	for i := range tg {
		if tg[i]%5 == 0 {
			tg[i] = -1
		}
	}
	return tg
}

// TestTrainerMatchesReference runs Step twice on one compiled graph, with the
// parameters changed in place in between, against the float64 forward.
func TestTrainerMatchesReference(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			m := variantModel(t, v.edit)
			batch, L := 3, 7
			tr, err := m.Compile(batch, L)
			if err != nil {
				t.Fatal(err)
			}
			for step := 0; step < 2; step++ {
				ids := randomIDs(batch*L, m.cfg.VocabSize, uint64(step))
				tg := randomTargets(batch*L, m.cfg.VocabSize, uint64(step+10))
				loss, err := tr.Step(ids, tg, nil)
				if err != nil {
					t.Fatal(err)
				}
				want := newRef64(m).forward(ids, batch, L)
				if e := testutil.RelL2(tr.Logits(), want); !testutil.Within(e, 1e-5) {
					t.Errorf("step %d: logits relative L2 error %.3g", step, e)
				}
				if wl := crossEntropy64(want, tg, m.cfg.PaddedVocab()); !testutil.Within(math.Abs(loss-wl), 1e-5) {
					t.Errorf("step %d: loss %.7f, reference %.7f", step, loss, wl)
				}
				perturb(m, uint64(step+20)) // in place: the graph must see it
			}
		})
	}
}

// TestGradFD checks the float64 graph's gradients against central finite
// differences of its loss, a few coordinates of every parameter, and the
// float32 graph's gradients against the float64 graph's, for every Mamba
// variant and Transformer++ test config.
func TestGradFD(t *testing.T) {
	for _, m := range allModels(t) {
		batch, L := 2, 6
		vals := widen(m.Params())
		ids := randomIDs(batch*L, m.Config().VocabSize, 1)
		tg := randomTargets(batch*L, m.Config().VocabSize, 2)
		train, err := build(m.(net), tensorFloat64, batch, L, true, vals)
		if err != nil {
			t.Fatal(err)
		}
		fwd, err := build(m.(net), tensorFloat64, batch, L, false, vals)
		if err != nil {
			t.Fatal(err)
		}
		graphLoss(t, train, ids, tg)
		tr, err := m.Compile(batch, L)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Step(ids, tg, nil); err != nil {
			t.Fatal(err)
		}
		r := newRNG(3, "fd")
		const h = 1e-5
		for i, p := range m.Params() {
			grad := train.vm.Float64s(train.grads[i])
			testutil.CheckErr(t, p.Name+": float32 gradient, relative L2 to float64", testutil.RelL2(p.Grad, grad), 1e-4)
			for range 3 {
				k := int(r.Uint64() % uint64(len(grad)))
				x := vals[i][k]
				vals[i][k] = x + h
				up := graphLoss(t, fwd, ids, tg)
				vals[i][k] = x - h
				down := graphLoss(t, fwd, ids, tg)
				vals[i][k] = x
				fd := (up - down) / (2 * h)
				testutil.CheckErr(t, fmt.Sprintf("%s[%d]: |gradient − finite difference|", p.Name, k), math.Abs(fd-grad[k]), 1e-6*math.Max(1, math.Abs(fd)))
			}
		}
	}
}

// widen copies float32 parameter values to float64.
func widen(ps []*Param) [][]float64 {
	vals := make([][]float64, len(ps))
	for i, p := range ps {
		vals[i] = testutil.Convert[float64](p.Value)
	}
	return vals
}

// graphLoss sets the ids and targets of gr, runs it and returns the loss.
func graphLoss(t *testing.T, gr *graph, ids, tg []int32) float64 {
	t.Helper()
	if err := gr.ids.Set(ids); err != nil {
		t.Fatal(err)
	}
	if err := gr.targets.Set(tg); err != nil {
		t.Fatal(err)
	}
	l, err := gr.run()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestStepDeterministic: results do not depend on GOMAXPROCS, for either arch.
func TestStepDeterministic(t *testing.T) {
	for _, m := range []LM{variantModel(t, func(c *Config) { c.DModel, c.DState = 64, 8 }), perturbedLlama(t, 1)} {
		batch, L := 2, 67
		ids := randomIDs(batch*L, m.Config().VocabSize, 1)
		tg := randomTargets(batch*L, m.Config().VocabSize, 2)
		run := func(procs int) (float64, [][]float32) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			tr, err := m.Compile(batch, L)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := tr.Step(ids, tg, nil)
			if err != nil {
				t.Fatal(err)
			}
			var grads [][]float32
			for _, p := range m.Params() {
				grads = append(grads, slices.Clone(p.Grad))
			}
			return loss, grads
		}
		l1, g1 := run(1)
		l4, g4 := run(4)
		if l1 != l4 {
			t.Errorf("%s: loss %v with 1 proc, %v with 4", m.Config().Arch, l1, l4)
		}
		for i := range g1 {
			if !slices.Equal(g1[i], g4[i]) {
				t.Errorf("%s: gradient differs between GOMAXPROCS 1 and 4", m.Params()[i].Name)
			}
		}
	}
}

func TestTrainerErrors(t *testing.T) {
	m := variantModel(t, func(c *Config) {})
	if _, err := m.Compile(0, 4); err == nil {
		t.Error("Compile(0, 4) succeeded")
	}
	tr, err := m.Compile(1, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ids, tg []int32
		want    string
	}{
		{[]int32{1, 2, 3}, []int32{1, 2, 3, 4}, "inputs"},
		{[]int32{1, 2, 3, 99}, []int32{1, 2, 3, 4}, "inputs"},
		{[]int32{1, 2, 3, 4}, []int32{1, 2, 3, -2}, "targets"},
	} {
		if _, err := tr.Step(tc.ids, tc.tg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Step(%v, %v): error %v, want one about %s", tc.ids, tc.tg, err, tc.want)
		}
	}
}

// TestTrainerDegenerateShapes: one token, d_state 1, dt_rank 1, with
// biases, selective and LTI.
func TestTrainerDegenerateShapes(t *testing.T) {
	for _, selective := range []bool{true, false} {
		m := variantModel(t, func(c *Config) { c.DState, c.DtRank, c.DModel, c.Bias, c.Selective = 1, 1, 4, true, selective })
		for _, sh := range [][2]int{{1, 1}, {1, 3}, {3, 1}} {
			tr, err := m.Compile(sh[0], sh[1])
			if err != nil {
				t.Fatal(err)
			}
			n := sh[0] * sh[1]
			ids := randomIDs(n, m.cfg.VocabSize, 1)
			tg := randomIDs(n, m.cfg.VocabSize, 2)
			loss, err := tr.Step(ids, tg, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := newRef64(m).forward(ids, sh[0], sh[1])
			if e := testutil.RelL2(tr.Logits(), want); !testutil.Within(e, 1e-5) || !testutil.Within(math.Abs(loss-crossEntropy64(want, tg, m.cfg.PaddedVocab())), 1e-5) {
				t.Errorf("selective %v, shape %v: logits error %.3g, loss %v", selective, sh, e, loss)
			}
		}
	}
}

// allModels are the Mamba variants and the Transformer++ test configs, perturbed.
func allModels(t *testing.T) []LM {
	var ms []LM
	for _, v := range variants {
		ms = append(ms, variantModel(t, v.edit))
	}
	for i := range llamaConfigs {
		ms = append(ms, perturbedLlama(t, i))
	}
	return ms
}

// TestStepAllocs: once warm, a training step allocates nothing, whatever
// GOMAXPROCS is.
func TestStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool allocate at random")
	}
	for _, m := range allModels(t) {
		batch, L := 2, 40
		tr, err := m.Compile(batch, L)
		if err != nil {
			t.Fatal(err)
		}
		ids := randomIDs(batch*L, m.Config().VocabSize, 1)
		tg := randomTargets(batch*L, m.Config().VocabSize, 2)
		for _, procs := range []int{1, 3} {
			old := runtime.GOMAXPROCS(procs)
			for range 2 {
				if _, err := tr.Step(ids, tg, nil); err != nil {
					t.Fatal(err)
				}
			}
			if a := testing.AllocsPerRun(3, func() { tr.Step(ids, tg, nil) }); a != 0 {
				t.Errorf("%+v, GOMAXPROCS %d: %v allocations per step", m.Config(), procs, a)
			}
			runtime.GOMAXPROCS(old)
		}
	}
}

// TestGradsBound: the training graph writes every gradient straight into
// Param.Grad (no copy after the run).
func TestGradsBound(t *testing.T) {
	for _, m := range allModels(t) {
		tr, err := m.Compile(2, 5)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range m.Params() {
			if !tr.train.bound[i] {
				t.Errorf("the gradient of %s is copied after the run", p.Name)
			}
		}
	}
}
