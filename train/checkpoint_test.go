package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeCheckpoint runs the fake model for two steps and returns its checkpoint.
func fakeCheckpoint(t *testing.T) string {
	t.Helper()
	cfg := fakeConfig()
	cfg.Run.MaxSteps, cfg.Optim.WarmupSteps = 2, 0
	out := t.TempDir()
	if _, err := Run(context.Background(), cfg, fakeOptions(out)); err != nil {
		t.Fatal(err)
	}
	return stepDir(filepath.Join(out, checkpointsDir), 2)
}

// A directory holding our checkpoint files is verified even when its manifest
// is gone, instead of being loaded unverified as a transformers directory.
func TestModelDirVerifiesOurCheckpoints(t *testing.T) {
	ck := fakeCheckpoint(t)
	if d, err := ModelDir(ck); err != nil || d != ck {
		t.Fatalf("ModelDir(intact checkpoint) = %q, %v", d, err)
	}
	os.Remove(filepath.Join(ck, manifestFile))
	if _, err := ModelDir(ck); err == nil || !strings.Contains(err.Error(), "no manifest.json") {
		t.Errorf("manifest deleted: ModelDir = %v, want a verification failure", err)
	}
	os.Remove(filepath.Join(ck, stateFile))
	if _, err := ModelDir(ck); err == nil || !strings.Contains(err.Error(), "no manifest.json") {
		t.Errorf("manifest and trainer state deleted: ModelDir = %v, want a verification failure", err)
	}
	hf := t.TempDir() // config.json and model.safetensors only: a transformers directory
	for _, f := range []string{"config.json", "model.safetensors"} {
		os.WriteFile(filepath.Join(hf, f), fileBytes(t, filepath.Join(ck, f)), 0o644)
	}
	if d, err := ModelDir(hf); err != nil || d != hf {
		t.Errorf("ModelDir(transformers directory) = %q, %v", d, err)
	}
}

// Checkpoints written before configs were decoded strictly stored an empty
// run.freeze as null; they still resume and evaluate.
func TestStoredNullFreezeStillReads(t *testing.T) {
	ck := fakeCheckpoint(t)
	p := filepath.Join(ck, stateFile)
	raw := fileBytes(t, p)
	old := regexp.MustCompile(`"freeze":\s*\[\]`).ReplaceAll(raw, []byte(`"freeze": null`))
	if bytes.Equal(old, raw) {
		t.Fatalf("no empty run.freeze in %s", raw)
	}
	os.WriteFile(p, old, 0o644)
	st, err := readState(ck)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(st.Config, nil)
	if err != nil || c.Run.Freeze != nil {
		t.Errorf("stored config with freeze null: %v, freeze %v", err, c.Run.Freeze)
	}
}
