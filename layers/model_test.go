package layers

import (
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

func TestNumParams(t *testing.T) {
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer = 50277, 768, 24
	if got := c.NumParams(); got != 129_135_360 {
		t.Errorf("mamba-130m has %d parameters, want 129,135,360", got)
	}
}

func TestNewInit(t *testing.T) {
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer, c.DState = 100, 64, 3, 8
	m, err := New(c, 42)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := New(c, 42)
	other, _ := New(c, 43)
	E, N, R := c.DInner(), c.DState, c.Rank()
	for i, p := range m.Params() {
		if !slices.Equal(p.Value, again.Params()[i].Value) {
			t.Errorf("%s differs between two models of the same seed", p.Name)
		}
		if len(p.Value) > 1 && !strings.HasSuffix(p.Name, "A_log") && !strings.HasSuffix(p.Name, ".D") &&
			!strings.Contains(p.Name, "norm") && slices.Equal(p.Value, other.Params()[i].Value) {
			t.Errorf("%s is the same for seeds 42 and 43", p.Name)
		}
		wantNoDecay := strings.HasSuffix(p.Name, "A_log") || strings.HasSuffix(p.Name, ".D") ||
			strings.Contains(p.Name, "norm") || strings.HasSuffix(p.Name, "bias")
		if p.NoDecay != wantNoDecay {
			t.Errorf("%s: NoDecay = %v", p.Name, p.NoDecay)
		}
		if len(p.Grad) != len(p.Value) {
			t.Errorf("%s: %d grads for %d values", p.Name, len(p.Grad), len(p.Value))
		}
	}
	stats := func(v []float32) (mean, std, maxAbs float64) {
		for _, x := range v {
			mean += float64(x)
			maxAbs = math.Max(maxAbs, math.Abs(float64(x)))
		}
		mean /= float64(len(v))
		for _, x := range v {
			std += (float64(x) - mean) * (float64(x) - mean)
		}
		return mean, math.Sqrt(std / float64(len(v))), maxAbs
	}
	b := m.blocks[1]
	if _, std, _ := stats(m.emb.Value); !testutil.Within(math.Abs(std-0.02), 0.002) {
		t.Errorf("embedding std %.4f, want 0.02", std)
	}
	uniform := func(p *Param, bound float64) {
		_, std, mx := stats(p.Value)
		if !(mx <= bound && mx >= 0.95*bound) || !testutil.Within(math.Abs(std-bound/math.Sqrt(3)), 0.1*bound) {
			t.Errorf("%s: max |w| %.4f, std %.4f; want U(±%.4f)", p.Name, mx, std, bound)
		}
	}
	uniform(b.inW, 1/math.Sqrt(64))
	uniform(b.xW, 1/math.Sqrt(float64(E)))
	uniform(b.convW, 0.5)
	uniform(b.dtW, 1/math.Sqrt(float64(R)))
	uniform(b.outW, 1/math.Sqrt(float64(E))/math.Sqrt(3))
	for e := 0; e < E; e++ {
		for n := 0; n < N; n++ {
			if want := float32(math.Log(float64(n + 1))); b.aLog.Value[e*N+n] != want {
				t.Fatalf("A_log[%d,%d] = %v, want log(%d)", e, n, b.aLog.Value[e*N+n], n+1)
			}
		}
		if b.d.Value[e] != 1 {
			t.Fatalf("D[%d] = %v, want 1", e, b.d.Value[e])
		}
		dt := math.Log1p(math.Exp(float64(b.dtB.Value[e]))) // softplus(bias) = initial Δ
		if !(dt >= c.DtMin*0.999 && dt <= c.DtMax*1.001) {
			t.Errorf("softplus(dt_proj.bias[%d]) = %g outside [%g, %g]", e, dt, c.DtMin, c.DtMax)
		}
	}
}

func TestNewLTI(t *testing.T) {
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer, c.Selective, c.Bias = 10, 16, 1, false, true
	m, err := New(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range m.Params() {
		names = append(names, strings.TrimPrefix(p.Name, "backbone."))
	}
	want := []string{"embeddings.weight", "layers.0.norm.weight", "layers.0.mixer.in_proj.weight",
		"layers.0.mixer.in_proj.bias", "layers.0.mixer.conv1d.weight", "layers.0.mixer.conv1d.bias",
		"layers.0.mixer.B", "layers.0.mixer.C", "layers.0.mixer.dt_proj.bias", "layers.0.mixer.A_log",
		"layers.0.mixer.D", "layers.0.mixer.out_proj.weight", "layers.0.mixer.out_proj.bias", "norm_f.weight"}
	if !slices.Equal(names, want) {
		t.Errorf("LTI parameters\n got %v\nwant %v", names, want)
	}
}

// TestDecoderMatchesReference runs the recurrent paths of random models,
// selective and LTI, with and without biases, against the float64 forward.
func TestDecoderMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name            string
		selective, bias bool
		convBias        bool
		k, rank         int
	}{
		{"selective", true, false, true, 4, 0},
		{"biases", true, true, false, 2, 3},
		{"lti", false, true, true, 5, 0},
		{"k1", true, false, true, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.VocabSize, c.DModel, c.NLayer, c.DState, c.DConv, c.DtRank = 37, 24, 2, 5, tc.k, tc.rank
			c.Selective, c.Bias, c.ConvBias = tc.selective, tc.bias, tc.convBias
			m, err := New(c, 7)
			if err != nil {
				t.Fatal(err)
			}
			perturb(m, 3)
			batch, L := 2, 13
			ids := randomIDs(batch*L, c.VocabSize, 5)
			want := newRef64(m).forward(ids, batch, L)
			checkDecoder(t, m, ids, batch, L, want, 1e-5)
			// The float64 recurrent step agrees with the float64 forward.
			st := newRef64(m).newStep()
			V := c.PaddedVocab()
			var got []float64
			for s := 0; s < L; s++ {
				got = append(got, st.step(ids[s])...)
			}
			if e := testutil.RelL2(got, want[:L*V]); !testutil.Within(e, 1e-12) {
				t.Errorf("float64 step vs forward: relative L2 error %.3g", e)
			}
		})
	}
}

// perturb moves every parameter away from its initial value (biases that
// start at 0, norms at 1, ...) so that tests exercise every term.
func perturb(m LM, seed uint64) {
	for _, p := range m.Params() {
		r := newRNG(seed, p.Name)
		for i := range p.Value {
			p.Value[i] += float32(0.1 * r.Normal())
		}
	}
}

func randomIDs(n, vocab int, seed uint64) []int32 {
	r := newRNG(seed, "ids")
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.Uint64() % uint64(vocab))
	}
	return ids
}

// NumParams counts without laying the model out, as the layout does, for
// every optional part of both architectures; a huge n_layer is validated
// without allocating.
func TestNumParamsMatchesLayout(t *testing.T) {
	for _, v := range variants {
		c := DefaultConfig()
		c.VocabSize, c.DModel, c.NLayer, c.DState = 21, 12, 3, 5
		v.edit(&c)
		n := 0
		for _, p := range layout(c).params {
			n += p.Size()
		}
		if got := c.NumParams(); got != n {
			t.Errorf("%s: NumParams %d, the layout holds %d", v.name, got, n)
		}
	}
	for i, c := range llamaConfigs {
		n := 0
		for _, p := range llamaLayout(c).params {
			n += p.Size()
		}
		if got := c.NumParams(); got != n {
			t.Errorf("transformer %d: NumParams %d, the layout holds %d", i, got, n)
		}
	}
	huge := llamaConfigs[0]
	huge.NLayer = 100_000_000
	if err := huge.Validate(); err != nil || !(huge.TrainingBytes(1, 1) > 1e13) {
		t.Errorf("a transformer of 10^8 layers: %v, %g bytes", err, huge.TrainingBytes(1, 1))
	}
	c := DefaultConfig()
	c.NLayer = 100_000_000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if !(c.TrainingBytes(8, 1024) > 1e15) {
		t.Errorf("TrainingBytes of 10^8 layers: %g", c.TrainingBytes(8, 1024))
	}
	runtime.ReadMemStats(&after)
	if b := after.TotalAlloc - before.TotalAlloc; b > 1<<20 {
		t.Errorf("Validate and TrainingBytes of 10^8 layers allocate %d bytes", b)
	}
	c.NLayer = math.MaxInt / 2
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "parameter count overflows") {
		t.Errorf("n_layer MaxInt/2: %v", err)
	}
	c = DefaultConfig()
	c.VocabSize = math.MaxInt - 3
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "exceeds 2^31 elements") {
		t.Errorf("vocab_size near MaxInt: %v", err)
	}
}
