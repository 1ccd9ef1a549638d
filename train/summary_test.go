package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func readSummary(t *testing.T, out string) RunSummary {
	t.Helper()
	s, err := ReadSummary(out)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The summary of a finished run matches its metrics, its config and the
// documented FLOPs formula.
func TestRunSummary(t *testing.T) {
	out := t.TempDir()
	cfg := fakeConfig()
	cfg.Run.EvalEvery = 3
	if _, err := Run(context.Background(), cfg, fakeOptions(out)); err != nil {
		t.Fatal(err)
	}
	s := readSummary(t, out)
	tokens := int64(cfg.Run.MaxSteps * cfg.Data.BatchSize * cfg.Data.SeqLen)
	sum := sha256.Sum256(cfg.JSON())
	V := cfg.Model.VocabSize
	if s.Arch != "mamba" || s.Params != V+1 || s.NonEmbeddingParams != V+1 || s.Step != cfg.Run.MaxSteps ||
		s.MaxSteps != cfg.Run.MaxSteps || !s.Finished || s.Tokens != tokens || s.SeqLen != cfg.Data.SeqLen ||
		s.TokensPerStep != cfg.Data.BatchSize*cfg.Data.SeqLen || s.ConfigSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("summary = %+v", s)
	}
	if fpt := cfg.Model.FLOPsPerToken(cfg.Data.SeqLen); s.FLOPsPerToken != fpt || s.FLOPs != float64(tokens)*fpt {
		t.Errorf("flops %v (%v per token), want %v × %v", s.FLOPs, s.FLOPsPerToken, tokens, fpt)
	}
	if s.WallS <= 0 || s.TokensPerS <= 0 || s.Build.Describe == "" || s.Build.GoVersion == "" {
		t.Errorf("wall %v s, %v tokens/s, build %+v", s.WallS, s.TokensPerS, s.Build)
	}
	var best *Metric
	var last Metric
	for _, m := range readMetrics(t, out) {
		if m.ValLoss == nil {
			continue
		}
		last = m
		if best == nil || *m.ValLoss < *best.ValLoss {
			best = &m
		}
	}
	if s.FinalValLoss == nil || *s.FinalValLoss != *last.ValLoss || s.FinalValStep != cfg.Run.MaxSteps ||
		s.FinalValBitsPerByte == nil || *s.FinalValBitsPerByte != *last.ValBitsPerByte {
		t.Errorf("final val %v at %d (bits/byte %v), want %v at %d", s.FinalValLoss, s.FinalValStep, s.FinalValBitsPerByte, *last.ValLoss, last.Step)
	}
	if s.BestValLoss == nil || *s.BestValLoss != *best.ValLoss || s.BestValStep != best.Step || *s.BestValBitsPerByte != *best.ValBitsPerByte {
		t.Errorf("best val %v at %d, want %v at %d", s.BestValLoss, s.BestValStep, *best.ValLoss, best.Step)
	}
}

// A summary is written at every checkpoint; a run resumed from one ends with the
// summary of an uninterrupted run (bar its wall time), its best and final
// evaluations included; and a run killed after its final checkpoint but before its
// summary gets the summary on resume.
func TestSummaryAtCheckpointsAndResume(t *testing.T) {
	cfg := fakeConfig()
	cfg.Run.EvalEvery = 4
	ref := t.TempDir()
	if _, err := Run(context.Background(), cfg, fakeOptions(ref)); err != nil {
		t.Fatal(err)
	}
	want := readSummary(t, ref)

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	o := fakeOptions(out)
	o.Backend = fakeBackend{hook: cancelAt(13, cancel)}
	if _, err := Run(ctx, cfg, o); err != ErrInterrupted {
		t.Fatalf("interrupted run: %v", err)
	}
	mid := readSummary(t, out)
	if mid.Step != 13 || mid.Finished || mid.FinalValStep != 12 || mid.FinalValLoss == nil {
		t.Errorf("summary of the interrupted run = %+v", mid)
	}
	o = fakeOptions(out)
	o.Resume = true
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Fatal(err)
	}
	got := readSummary(t, out)
	got.WallS, got.TokensPerS = want.WallS, want.TokensPerS
	if gj, wj := string(jsonOf(t, got)), string(jsonOf(t, want)); gj != wj {
		t.Errorf("resumed summary\n%s\nwant\n%s", gj, wj)
	}

	if err := os.Remove(filepath.Join(out, SummaryFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Fatal(err)
	}
	again := readSummary(t, out)
	again.WallS, again.TokensPerS = want.WallS, want.TokensPerS
	if gj, wj := string(jsonOf(t, again)), string(jsonOf(t, want)); gj != wj {
		t.Errorf("summary rewritten on resume at the final step\n%s\nwant\n%s", gj, wj)
	}
}

func TestIsEmbedding(t *testing.T) {
	for name, want := range map[string]bool{
		"backbone.embeddings.weight":             true,
		"backbone.embedding.weight":              true,
		"model.embed_tokens.weight":              true,
		"lm_head.weight":                         true,
		"backbone.layers.0.mixer.in_proj.weight": false,
		"backbone.norm_f.weight":                 false,
		"model.layers.3.self_attn.q_proj.weight": false,
	} {
		if got := IsEmbedding(name); got != want {
			t.Errorf("IsEmbedding(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConfigArch(t *testing.T) {
	for raw, want := range map[string]string{
		`{"model": {"d_model": 8}}`:                  "mamba",
		`{"model": {"arch": "transformer"}}`:         "transformer",
		`{"model": {"arch": "mamba", "n_layer": 2}}`: "mamba",
		`not json`: "mamba",
	} {
		if got := ConfigArch([]byte(raw)); got != want {
			t.Errorf("ConfigArch(%s) = %q, want %q", raw, got, want)
		}
	}
}

// The real model's non-embedding count leaves out exactly the tied embedding.
func TestNonEmbeddingParamsOfMamba(t *testing.T) {
	cfg := fakeConfig()
	cfg.Model.DModel, cfg.Model.NLayer = 16, 2
	cfg.Run.MaxSteps, cfg.Run.EvalEvery, cfg.Run.CheckpointEvery, cfg.Optim.WarmupSteps = 1, 1, 1, 0
	out := t.TempDir()
	o := fakeOptions(out)
	o.Backend = Layers{}
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Fatal(err)
	}
	s := readSummary(t, out)
	m := cfg.Model
	if s.Params != m.NumParams() || s.NonEmbeddingParams != m.NumParams()-m.PaddedVocab()*m.DModel {
		t.Errorf("params %d (non-embedding %d), want %d (%d)", s.Params, s.NonEmbeddingParams, m.NumParams(), m.NumParams()-m.PaddedVocab()*m.DModel)
	}
}

func jsonOf(t *testing.T, s RunSummary) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
