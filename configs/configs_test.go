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

func TestLadderSizes(t *testing.T) {
	for name, want := range map[string]float64{
		"mamba-0.1m.json": 0.1e6, "mamba-0.5m.json": 0.5e6, "mamba-2m.json": 2e6,
		"mamba-8m.json": 8e6, "mamba-30m.json": 30e6, "mamba-130m.json": 130e6,
	} {
		raw, err := configs.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := train.ParseConfig(raw, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
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

// TestBenchConfig: configs/bench.json is the benchmark model of the issue
// that added it (vocabulary 256, d_model 256, 4 layers, batch 8 × 512).
func TestBenchConfig(t *testing.T) {
	raw, err := configs.FS.ReadFile("bench.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := train.ParseConfig(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, d := c.Model, c.Data
	if m.VocabSize != 256 || m.DModel != 256 || m.NLayer != 4 || m.DState != 16 || m.Expand != 2 || d.BatchSize != 8 || d.SeqLen != 512 {
		t.Errorf("bench.json: model %+v, batch %d × %d", m, d.BatchSize, d.SeqLen)
	}
	if n := m.NumParams(); n != 1817856 {
		t.Errorf("bench.json: %d parameters, want 1,817,856", n)
	}
}
