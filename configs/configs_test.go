package configs_test

import (
	"io/fs"
	"math"
	"testing"

	"github.com/mambago/mamba/configs"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/train"
)

func TestEveryConfigDecodesAndValidates(t *testing.T) {
	names, err := fs.Glob(configs.FS, "*.json")
	if err != nil || len(names) < 10 {
		t.Fatalf("found %d configs (%v), want at least 10", len(names), err)
	}
	for _, n := range names {
		raw, _ := configs.FS.ReadFile(n)
		if _, err := train.ParseConfig(raw, nil); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// referenceCount is the parameter count of mamba-reference.md §3.8 (tied head).
func referenceCount(c layers.Config) int {
	D, E, N, K, R := c.DModel, c.DInner(), c.DState, c.DConv, c.Rank()
	per := 2*E*D + E*K + E + (R+2*N)*E + E*R + E + E*N + E + D*E + D
	return c.PaddedVocab()*D + c.NLayer*per + D
}

// parse reads and resolves one embedded config.
func parse(t *testing.T, name string) train.Config {
	t.Helper()
	raw, err := configs.FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := train.ParseConfig(raw, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func TestLadderSizes(t *testing.T) {
	for name, want := range map[string]float64{
		"mamba-0.1m.json": 0.1e6, "mamba-0.5m.json": 0.5e6, "mamba-2m.json": 2e6,
		"mamba-8m.json": 8e6, "mamba-30m.json": 30e6, "mamba-130m.json": 130e6,
	} {
		c := parse(t, name)
		n := referenceCount(c.Model)
		if math.Abs(float64(n)/want-1) > 0.15 {
			t.Errorf("%s: %d parameters, want about %.0f", name, n, want)
		}
		if name == "mamba-130m.json" && n != 129135360 {
			t.Errorf("mamba-130m: %d parameters, want the released 129,135,360", n)
		}
		if got := c.Model.NumParams(); got != n {
			t.Errorf("%s: layers counts %d parameters, the reference formula %d", name, got, n)
		}
	}
}

// transformerCount is the parameter count of a Transformer++ with a tied head: per layer two
// norms, the q, k, v and o projections and the three SwiGLU matrices, then the final norm.
func transformerCount(c layers.Config) int {
	D, F, Q, KV := c.DModel, c.FF(), c.NHead*c.HeadSize(), c.KVHeads()*c.HeadSize()
	per := 2*D + D*Q + 2*D*KV + Q*D + 3*D*F
	return c.PaddedVocab()*D + c.NLayer*per + D
}

// TestTransformerLadder: each transformer-* config has about the parameters of the mamba-* config
// of its size, half its layers (or fewer) at the same width, and the count stage 1 proposed.
func TestTransformerLadder(t *testing.T) {
	for _, tc := range []struct {
		size   string
		params int
	}{{"0.1m", 110912}, {"0.5m", 508544}, {"2m", 2115264}, {"8m", 7769472}, {"30m", 29171840}, {"130m", 128877312}} {
		tp, mb := parse(t, "transformer-"+tc.size+".json").Model, parse(t, "mamba-"+tc.size+".json").Model
		n := transformerCount(tp)
		if !tp.IsTransformer() || n != tc.params || tp.NumParams() != n {
			t.Errorf("transformer-%s: arch %q, %d parameters (layers counts %d), want %d", tc.size, tp.Arch, n, tp.NumParams(), tc.params)
		}
		if r := float64(n) / float64(mb.NumParams()); math.Abs(r-1) > 0.05 {
			t.Errorf("transformer-%s: %d parameters, %.3f× the Mamba's %d", tc.size, n, r, mb.NumParams())
		}
		if tp.DModel != mb.DModel || 2*tp.NLayer > mb.NLayer+1 || tp.HeadSize()*tp.NHead != tp.DModel {
			t.Errorf("transformer-%s: d_model %d × %d layers (%d heads of %d), Mamba d_model %d × %d", tc.size, tp.DModel, tp.NLayer, tp.NHead, tp.HeadSize(), mb.DModel, mb.NLayer)
		}
	}
}

// TestBenchConfig: configs/bench.json is the benchmark model of the issue
// that added it (vocabulary 256, d_model 256, 4 layers, batch 8 × 512).
func TestBenchConfig(t *testing.T) {
	c := parse(t, "bench.json")
	m, d := c.Model, c.Data
	if m.VocabSize != 256 || m.DModel != 256 || m.NLayer != 4 || m.DState != 16 || m.Expand != 2 || d.BatchSize != 8 || d.SeqLen != 512 {
		t.Errorf("bench.json: model %+v, batch %d × %d", m, d.BatchSize, d.SeqLen)
	}
	if n := m.NumParams(); n != 1817856 {
		t.Errorf("bench.json: %d parameters, want 1,817,856", n)
	}
}

// TestBenchTransformerConfig: configs/bench-transformer.json is the PyTorch anchor of the
// Transformer++ speed target (experiments/bench/torch_bench.py for bench.json: d_model 256, half of
// 4 layers, heads of 64, SwiGLU width int(8·256/3) = 682, vocabulary 256, batch 8 × 512).
func TestBenchTransformerConfig(t *testing.T) {
	c := parse(t, "bench-transformer.json")
	m, d := c.Model, c.Data
	if !m.IsTransformer() || m.VocabSize != 256 || m.DModel != 256 || m.NLayer != 2 || m.HeadSize() != 64 || m.FF() != 682 || d.BatchSize != 8 || d.SeqLen != 512 {
		t.Errorf("bench-transformer.json: model %+v, batch %d × %d", m, d.BatchSize, d.SeqLen)
	}
	if n := m.NumParams(); n != 1638656 {
		t.Errorf("bench-transformer.json: %d parameters, want 1,638,656", n)
	}
}
