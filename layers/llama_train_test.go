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
				loss, err := tr.Step(ids, tg, nil)
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
