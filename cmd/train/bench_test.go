package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mambago/mamba/layers"
)

var benchTiny = []string{"bench", "--d-model", "16", "--n-layer", "1", "--vocab-size", "16", "--d-state", "4",
	"--batch-size", "2", "--seq-len", "16", "--steps", "2"}

// TestBenchJSON: train bench on a tiny model prints one JSON object with
// the documented keys and sensible values.
func TestBenchJSON(t *testing.T) {
	r := runBin(t, append(benchTiny, "--json")...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	for _, k := range []string{"tokens_per_s", "mfu", "sgemm_gflops", "flops_per_token", "params", "decode_tokens_per_s_b1", "decode_tokens_per_s_b16", "blas", "ops"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no key %q in %s", k, r.stdout)
		}
	}
	for _, k := range []string{"tokens_per_s", "mfu", "sgemm_gflops", "decode_tokens_per_s_b1", "decode_tokens_per_s_b16"} {
		if v, _ := got[k].(float64); !(v > 0) {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
	c := layers.DefaultConfig()
	c.DModel, c.NLayer, c.VocabSize, c.DState = 16, 1, 16, 4
	if p, _ := got["params"].(float64); int(p) != c.NumParams() {
		t.Errorf("params = %v, want %d", got["params"], c.NumParams())
	}
}

// TestBenchTables: the default output names the measures and the ops.
func TestBenchTables(t *testing.T) {
	r := runBin(t, benchTiny...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"training tokens/s", "MFU", "sgemm peak", "generation tokens/s, batch 16", "BLAS", "Linear backward", "Scan", "AdamW"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output has no %q:\n%s", want, r.stdout)
		}
	}
}

// TestBenchRefusals: a model that does not fit in memory is refused before
// anything is allocated, with the bytes it needs; bad flags are exit 2 with
// one line.
func TestBenchRefusals(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--d-model", "16384", "--n-layer", "64"}, "needs about"},
		{[]string{"bench", "--steps", "0"}, "--steps 0"},
		{[]string{"bench", "--d-model", "-4"}, "--d-model -4"},
		{[]string{"bench", "--batch-size", "x"}, "invalid argument"},
		{[]string{"bench", "--config", "no-such-file.json"}, "no-such-file.json"},
		{[]string{"bench", "--frobnicate"}, "unknown flag"},
		{[]string{"bench", "--d-model", "65536", "--expand", "2"}, "exceeds 2^31 elements"},
	} {
		r := runBin(t, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 and one line containing %q", c.args, r.code, r.stderr, r.stdout, c.want)
		}
	}
}

// TestBenchProfileAndVector: --cpuprofile writes a CPU profile (gzip) of the timed steps, and
// a directory that cannot hold it is exit 2 with one line; the JSON names the vector path,
// which MAMBA_VECTOR sets, and a MAMBA_VECTOR the CPU cannot run is exit 2 with one line.
func TestBenchProfileAndVector(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	r := runBin(t, append(benchTiny, "--json", "--cpuprofile", prof)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(prof); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("--cpuprofile wrote %d bytes (%v), want a gzip profile", len(b), err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got["vector_path"] == "" {
		t.Errorf("no vector_path in %s (%v)", r.stdout, err)
	}
	r = runBin(t, append(benchTiny, "--cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.prof"))...)
	if r.code != 2 || !strings.Contains(r.stderr, "--cpuprofile") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("profile in a missing directory: exit %d, stderr %q; want 2 and one line naming --cpuprofile", r.code, r.stderr)
	}
	for _, c := range []struct {
		env  string
		code int
		want string
	}{{"MAMBA_VECTOR=go", 0, `"vector_path":"go (MAMBA_VECTOR)"`}, {"MAMBA_VECTOR=sse9", 2, "MAMBA_VECTOR"}} {
		cmd := exec.Command(bin, append(benchTiny, "--json")...)
		cmd.Env = append(os.Environ(), c.env)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		code := 0
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		out := o.String() + e.String()
		if code != c.code || !strings.Contains(out, c.want) || c.code == 2 && strings.Count(e.String(), "\n") != 1 {
			t.Errorf("%s: exit %d, output %q; want exit %d and %q", c.env, code, out, c.code, c.want)
		}
	}
}
