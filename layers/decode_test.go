package layers

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// decodeAll feeds ids (batch, L) to a fresh generator one Step at a time and
// returns the logits of every position, (batch, L, V).
func decodeAll(t *testing.T, m LM, ids []int32, batch, L int) []float32 {
	t.Helper()
	d, err := m.NewGenerator(batch, L)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	V := m.Config().PaddedVocab()
	out := make([]float32, batch*L*V)
	tok := make([]int32, batch)
	for s := 0; s < L; s++ {
		for b := range tok {
			tok[b] = ids[b*L+s]
		}
		logits, err := d.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < batch; b++ {
			copy(out[(b*L+s)*V:(b*L+s+1)*V], logits[b*V:])
		}
	}
	return out
}

// lastRows picks position L−1 of each row from (batch, L, V) logits.
func lastRows[T float32 | float64](x []T, batch, L, V int) []T {
	out := make([]T, 0, batch*V)
	for b := 0; b < batch; b++ {
		out = append(out, x[(b*L+L-1)*V:(b*L+L)*V]...)
	}
	return out
}

// checkDecoder compares the recurrent paths against want (batch, L, V):
// Step for every token, one Prefill of everything, and a Prefill of a
// prefix followed by a second Prefill and Steps.
func checkDecoder(t *testing.T, m LM, ids []int32, batch, L int, want []float64, tol float64) {
	t.Helper()
	V := m.Config().PaddedVocab()
	if e := testutil.RelL2(decodeAll(t, m, ids, batch, L), want); !testutil.Within(e, tol) {
		t.Errorf("step-by-step logits: relative L2 error %.3g > %.g", e, tol)
	} else {
		t.Logf("step-by-step logits: relative L2 error %.3g", e)
	}
	d, err := m.NewGenerator(batch, L)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.Prefill(ids, L)
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.RelL2(got, lastRows(want, batch, L, V)); !testutil.Within(e, tol) {
		t.Errorf("prefill logits: relative L2 error %.3g > %.g", e, tol)
	}
	// Chunks: prefix of p tokens, then q more through a second prefill, then steps.
	p, q := L/3+1, L/4+1
	if p+q >= L {
		return
	}
	if d, err = m.NewGenerator(batch, L); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cut := func(from, to int) []int32 {
		var c []int32
		for b := 0; b < batch; b++ {
			c = append(c, ids[b*L+from:b*L+to]...)
		}
		return c
	}
	if _, err := d.Prefill(cut(0, p), p); err != nil {
		t.Fatal(err)
	}
	if got, err = d.Prefill(cut(p, p+q), q); err != nil {
		t.Fatal(err)
	}
	for s := p + q; s < L; s++ {
		if got, err = d.Step(cut(s, s+1)); err != nil {
			t.Fatal(err)
		}
	}
	if e := testutil.RelL2(got, lastRows(want, batch, L, V)); !testutil.Within(e, tol) {
		t.Errorf("prefill+prefill+step logits: relative L2 error %.3g > %.g", e, tol)
	}
	if d.Pos() != L {
		t.Errorf("Pos() = %d after %d tokens", d.Pos(), L)
	}
}

func TestFixtureDecode(t *testing.T) {
	for _, dir := range fixtureDirs(t, "hf_*") {
		m, fx := loadHFFixture(t, dir)
		t.Run(fx.name, func(t *testing.T) {
			V := m.cfg.PaddedVocab()
			ref := newRef64(m).forward(fx.ids, fx.batch, fx.seqLen)
			if e := testutil.RelL2(ref, fx.logits); !testutil.Within(e, 1e-5) {
				t.Errorf("float64 reference logits: relative L2 error %.3g vs transformers", e)
			}
			loss := crossEntropy64(ref, shiftedTargets(fx.ids, fx.batch, fx.seqLen), V)
			if d := math.Abs(loss - fx.loss); !testutil.Within(d, 1e-6) {
				t.Errorf("float64 reference loss %.8f, transformers %.8f", loss, fx.loss)
			}
			checkDecoder(t, m, fx.ids, fx.batch, fx.seqLen, fx.logits, 1e-4)
			checkFixtureGreedy(t, m, fx)
		})
	}
}

// TestDecoderStepDeterministic: the one-token step gives bitwise the same logits
// whatever the size of its team (GOMAXPROCS when the generator is made, every
// phase of the Mamba's step spread over all of it), over several blocks of
// channels, with batch 1 and 3, for both archs; once warm it allocates nothing.
func TestDecoderStepDeterministic(t *testing.T) {
	defer func(ns float64) { stepMemberNs = ns }(stepMemberNs)
	stepMemberNs = 1
	for _, m := range []LM{variantModel(t, func(c *Config) { c.DModel, c.DState, c.Bias = 64, 8, true }), perturbedLlama(t, 1)} {
		for _, batch := range []int{1, 3} {
			ids := randomIDs(batch*6, m.Config().VocabSize, 4)
			var got [2][]float32
			for i, procs := range []int{1, 4} {
				old := runtime.GOMAXPROCS(procs)
				d, err := m.NewGenerator(batch, 100)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := d.Prefill(ids[:batch*2], 2); err != nil {
					t.Fatal(err)
				}
				for s := 2; s < 6; s++ {
					logits, err := d.Step(ids[batch*s : batch*(s+1)])
					if err != nil {
						t.Fatal(err)
					}
					got[i] = append(got[i], logits...)
				}
				if !raceEnabled {
					if a := testing.AllocsPerRun(20, func() { d.Step(ids[:batch]) }); a != 0 {
						t.Errorf("%s, batch %d, GOMAXPROCS %d: %v allocations per step", m.Config().Arch, batch, procs, a)
					}
				}
				d.Close()
				runtime.GOMAXPROCS(old)
			}
			if !slices.Equal(got[0], got[1]) {
				t.Errorf("%s, batch %d: logits differ between teams of 1 and 4", m.Config().Arch, batch)
			}
		}
	}
}

// TestDecoderStepRowsIndependent: a row's logits from Step are bitwise the same
// whether it is decoded alone or in a batch (the products sum every output in
// one order, whatever the other rows), on a model whose dimensions take the
// vector tiles (multiples of 8) and one that does not.
func TestDecoderStepRowsIndependent(t *testing.T) {
	for _, dModel := range []int{64, 36} {
		m := variantModel(t, func(c *Config) { c.DModel, c.DState, c.Bias = dModel, 8, true })
		const batch, L = 5, 4
		ids := randomIDs(batch*L, m.cfg.VocabSize, 9)
		V := m.cfg.PaddedVocab()
		all := decodeAll(t, m, ids, batch, L)
		for b := 0; b < batch; b++ {
			one := decodeAll(t, m, ids[b*L:(b+1)*L], 1, L)
			if !slices.Equal(one, all[b*L*V:(b+1)*L*V]) {
				t.Errorf("d_model %d: row %d decoded alone differs from the same row in a batch of %d", dModel, b, batch)
			}
		}
	}
}
