package layers

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// TestLlamaFixtureReference checks every transformers LlamaForCausalLM fixture (llama_*, made by
// shared/reference/llama_fixtures.py in float64) against the float64 reference model read from
// the same files: logits, loss and the greedy continuation, and that LoadLlama reads the
// directory (every weight the float32 rounding of the stored float64).
//
// The reference reproduces transformers' float64 model bit for bit except in two float32 steps
// that depend on the machine that made the fixture: the order of PyTorch's float32 sum inside
// LlamaRMSNorm (its vector width, 8 lanes with AVX2 kernels and 16 with AVX-512 ones; the fixture
// does not record which, so both are tried and the closer is kept) and PyTorch's float32 cos,
// which is not correctly rounded there (on llama_shared_tiny, 7 of the 96 cosines are one ulp
// away from the correctly rounded value; with those 7 values the logits match bit for bit). The
// logits agree to 2.4e-9 relative L2 on llama_shared_tiny and to 1e-9 … 1e-8 on the other
// random-weight fixtures; a trained model's larger activations carry those float32 differences
// further (1.0e-7 on llama_x_trained), so the check allows 1e-6, still ten times below the
// float32 model's tolerance that this reference serves. The loss is taken in float32 by
// transformers (it upcasts the logits to float32, and stores it as F32).
func TestLlamaFixtureReference(t *testing.T) {
	for _, dir := range fixtureDirs(t, "llama_*") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			fx := readFixture(t, dir)
			ids, batch, L, want := fx.ids, fx.batch, fx.seqLen, fx.logits
			var r *llamaRef64
			var logits []float64
			best := math.Inf(1)
			for _, lanes := range []int{8, 16} {
				rl := llamaRefFromFile(t, dir, lanes)
				got := rl.forward(t, ids, batch, L)
				if e := testutil.RelL2(got, want); e < best || r == nil {
					r, logits, best = rl, got, e
				}
			}
			t.Logf("logits: relative L2 error %.3g (float32 sums of %d lanes)", best, r.lanes)
			testutil.CheckErr(t, "logits relative L2", best, 1e-6)
			V := r.cfg.PaddedVocab()
			ce := crossEntropy64(logits, shiftedTargets(ids, batch, L), V)
			testutil.CheckErr(t, "loss absolute error", math.Abs(ce-fx.loss), 1e-6)
			if got := r.greedy(t, fx.prompt, len(fx.greedy)-len(fx.prompt)); !slices.Equal(got, fx.greedy) {
				t.Errorf("greedy continuation\n got %v\nwant %v", got, fx.greedy)
			}

			m, err := LoadLlama(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.cfg != r.cfg {
				t.Errorf("LoadLlama config %+v, want %+v", m.cfg, r.cfg)
			}
			for _, p := range m.Params() {
				w := r.w[p.Name]
				for i, v := range p.Value {
					if v != float32(w[i]) {
						t.Fatalf("%s[%d] = %v, want float32(%v)", p.Name, i, v, w[i])
					}
				}
			}
		})
	}
}

// TestLlamaFixtureTrain checks the float32 Transformer++ against transformers on every llama_*
// fixture: the training graph's logits (≤ 1e-4 relative L2), loss (≤ 1e-5 absolute, labels =
// input_ids shifted inside the loss) and the gradient of every parameter (≤ 1e-3 relative L2,
// against grad.<name>); Eval's loss equals Step's; and generation (the prompt through the flash
// kernel, then key/value-cache steps) gives the greedy tokens exactly.
func TestLlamaFixtureTrain(t *testing.T) {
	for _, dir := range fixtureDirs(t, "llama_*") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := LoadLlama(dir)
			if err != nil {
				t.Fatal(err)
			}
			fx := readFixture(t, dir)
			checkFixtureTrain(t, m, fx)
			checkFixtureGreedy(t, m, fx)
		})
	}
}
