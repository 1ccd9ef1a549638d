package layers

import (
	"fmt"
	"math"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// perturbedLlama is a model of llamaConfigs[i] with every weight moved by N(0, 0.1²), so that the
// attention and the norms are far from their initial near-uniform state.
func perturbedLlama(t *testing.T, i int) *Llama {
	t.Helper()
	m := newLlama(t, llamaConfigs[i])
	perturb(m, uint64(10+i))
	return m
}

// TestLlamaTrainerMatchesReference runs Step twice on one compiled graph, with the parameters
// changed in place in between, against the float64 transcription of transformers' forward.
func TestLlamaTrainerMatchesReference(t *testing.T) {
	for i := range llamaConfigs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := perturbedLlama(t, i)
			batch, L := 3, 70 // two attention tiles, the second ragged
			tr, err := m.Compile(batch, L)
			if err != nil {
				t.Fatal(err)
			}
			for step := range 2 {
				ids := randomIDs(batch*L, m.cfg.VocabSize, uint64(step))
				tg := randomTargets(batch*L, m.cfg.VocabSize, uint64(step+10))
				loss, err := tr.Step(ids, tg)
				if err != nil {
					t.Fatal(err)
				}
				want := llamaRefFromModel(m, 8).forward(t, ids, batch, L)
				testutil.CheckErr(t, fmt.Sprintf("step %d: logits relative L2", step), testutil.RelL2(tr.Logits(), want), 1e-5)
				testutil.CheckErr(t, fmt.Sprintf("step %d: loss absolute error", step), math.Abs(loss-crossEntropy64(want, tg, m.cfg.PaddedVocab())), 1e-5)
				perturb(m, uint64(step+20)) // in place: the graph must see it
			}
		})
	}
}

// llamaGraph64 builds the float64 graph of m (with gradients or not) on a widened copy of its
// parameters, vals.
func llamaGraph64(t *testing.T, m *Llama, batch, L int, grads bool, vals [][]float64) *graph {
	t.Helper()
	gr, err := build(m, tensorFloat64, batch, L, grads, vals)
	if err != nil {
		t.Fatal(err)
	}
	return gr
}

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

// TestLlamaGradFD checks the float64 graph's gradients against central finite differences of its
// loss, a few coordinates of every parameter; and the float32 graph's gradients against the
// float64 graph's.
func TestLlamaGradFD(t *testing.T) {
	for i := range llamaConfigs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := perturbedLlama(t, i)
			batch, L := 2, 6
			vals := widen(m.params)
			ids := randomIDs(batch*L, m.cfg.VocabSize, 1)
			tg := randomTargets(batch*L, m.cfg.VocabSize, 2)
			train, fwd := llamaGraph64(t, m, batch, L, true, vals), llamaGraph64(t, m, batch, L, false, vals)
			graphLoss(t, train, ids, tg)
			tr, err := m.Compile(batch, L)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Step(ids, tg); err != nil {
				t.Fatal(err)
			}
			r := newRNG(3, "fd")
			const h = 1e-5
			for i, p := range m.params {
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
		})
	}
}
