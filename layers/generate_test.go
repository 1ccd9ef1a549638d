package layers

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

func TestSamplerDistribution(t *testing.T) {
	logits := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.2)), 9} // id 3 is padding
	for _, tc := range []struct {
		s    Sampling
		want []float64
	}{
		{Sampling{Temperature: 1}, []float64{0.5, 0.3, 0.2}},
		{Sampling{Temperature: 1, TopK: 2}, []float64{0.625, 0.375, 0}},
		{Sampling{Temperature: 1, TopP: 0.7}, []float64{0.625, 0.375, 0}},
		{Sampling{Temperature: 0.5}, []float64{25.0 / 38, 9.0 / 38, 4.0 / 38}},
		{Sampling{Temperature: 2, TopK: 1}, []float64{1, 0, 0}},
		{Sampling{}, []float64{1, 0, 0}},
	} {
		sp := newSampler(tc.s, 3)
		const n = 20000
		count := make([]float64, 3)
		for i := 0; i < n; i++ {
			count[sp.next(logits)]++
		}
		for k := range count {
			if !testutil.Within(math.Abs(count[k]/n-tc.want[k]), 0.015) {
				t.Errorf("%+v: frequencies %v, want %v", tc.s, count, tc.want)
				break
			}
		}
	}
}

func TestGenerate(t *testing.T) {
	m := variantModel(t, func(c *Config) {})
	prompt := randomIDs(2*5, m.cfg.VocabSize, 4)
	greedy, err := m.Generate(prompt, 2, 6, Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	if top1, _ := m.Generate(prompt, 2, 6, Sampling{Temperature: 1, TopK: 1, Seed: 9}); !slices.Equal(top1, greedy) {
		t.Errorf("top-k 1 sampling %v differs from greedy %v", top1, greedy)
	}
	// Greedy generation agrees with the float64 forward re-run on the growing sequence.
	seq := slices.Clone(prompt[:5])
	for i := 0; i < 6; i++ {
		V := m.cfg.PaddedVocab()
		logits := newRef64(m).forward(seq, 1, len(seq))
		last := logits[(len(seq)-1)*V : len(seq)*V][:m.cfg.VocabSize]
		best := 0
		for k, v := range last {
			if v > last[best] {
				best = k
			}
		}
		if int32(best) != greedy[i] {
			t.Fatalf("greedy token %d is %d, the float64 forward says %d", i, greedy[i], best)
		}
		seq = append(seq, int32(best))
	}
	a, _ := m.Generate(prompt, 2, 20, Sampling{Temperature: 1.5, TopP: 0.9, Seed: 1})
	b, _ := m.Generate(prompt, 2, 20, Sampling{Temperature: 1.5, TopP: 0.9, Seed: 1})
	c, _ := m.Generate(prompt, 2, 20, Sampling{Temperature: 1.5, TopP: 0.9, Seed: 2})
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Errorf("seeded sampling: seed 1 twice %v / %v, seed 2 %v", a, b, c)
	}
	for _, tok := range a {
		if int(tok) >= m.cfg.VocabSize {
			t.Errorf("sampled padding id %d", tok)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	m := variantModel(t, func(c *Config) {})
	for _, tc := range []struct {
		prompt   []int32
		batch, n int
		s        Sampling
		want     string
	}{
		{[]int32{1, 2, 3}, 2, 4, Sampling{}, "does not split"},
		{nil, 1, 4, Sampling{}, "does not split"},
		{[]int32{1, 2}, 1, -1, Sampling{}, "new tokens"},
		{[]int32{1, 2}, 1, 4, Sampling{TopK: -1}, "top-k"},
		{[]int32{1, 2}, 1, 4, Sampling{TopP: 1.5}, "top-p"},
		{[]int32{1, 2}, 1, 4, Sampling{Temperature: math.Inf(1)}, "temperature"},
		{[]int32{1, 2}, 1, 4, Sampling{Temperature: -1}, "temperature must be a finite number ≥ 0 (0 = greedy), got -1"},
		{[]int32{1, 2}, 1, 4, Sampling{Temperature: 1, TopP: -0.1}, "top-p"},
		{[]int32{1, 2}, 1, 4, Sampling{Temperature: 1, TopP: math.NaN()}, "top-p"},
		{[]int32{1, 200}, 1, 4, Sampling{}, "outside the vocabulary"},
	} {
		if _, err := m.Generate(tc.prompt, tc.batch, tc.n, tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Generate(%v, %d, %d, %+v): error %v, want %q", tc.prompt, tc.batch, tc.n, tc.s, err, tc.want)
		}
	}
	if _, err := m.NewDecoder(0); err == nil {
		t.Error("NewDecoder(0) succeeded")
	}
	d, _ := m.NewDecoder(2)
	if _, err := d.Step([]int32{1}); err == nil {
		t.Error("Step with 1 token for batch 2 succeeded")
	}
	if _, err := d.Prefill([]int32{1, 2}, 0); err == nil {
		t.Error("Prefill of length 0 succeeded")
	}
}
