package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/internal/cuda/cudatest"
)

// TestHostEmulator runs this package's CUDA tests on the host emulator of the kernels.
func TestHostEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("not run in -short mode")
	}
	cudatest.OnEmulator(t, "CUDA")
}

// runBinEnv is runBin with env (name=value entries) added to the environment.
func runBinEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// TestNoGPUExitsTwo: asking for cuda where there is no driver is exit status 2 with one line, from
// every command, and leaves no run directory.
func TestNoGPUExitsTwo(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	r := runBin(t, append(tinyRun(2, 2), "--out", out)...)
	if r.code != 0 {
		t.Fatalf("tiny run: exit %d: %s", r.code, r.stderr)
	}
	noDriver := []string{cuda.EnvDriverLib + "=" + filepath.Join(dir, "nowhere", "libcuda.so.1")}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"train", append(tinyRun(2, 2), "--device", "cuda", "--out", filepath.Join(dir, "gpu"))},
		{"eval", []string{"eval", "--checkpoint", out, "--device", "cuda"}},
		{"generate", []string{"generate", "--checkpoint", out, "--prompt-ids", "1,2", "--device", "cuda"}},
		{"bench", append(benchTiny, "--device", "cuda")},
	} {
		checkBadInput(t, tc.name, runBinEnv(t, noDriver, tc.args...), "no NVIDIA driver", filepath.Join(dir, "gpu"))
	}
	checkBadInput(t, "bf16 on the cpu", runBin(t, append(benchTiny, "--precision", "bf16")...), "GPU only", "")
	checkBadInput(t, "unknown device", runBin(t, append(benchTiny, "--device", "tpu")...), "want cpu or cuda", "")
}

// TestCUDACommands trains, evaluates, generates and benches a tiny model on the GPU.
func TestCUDACommands(t *testing.T) {
	cudatest.Device(t)
	out := filepath.Join(t.TempDir(), "run")
	r := runBin(t, append(tinyRun(4, 2), "--device", "cuda", "--precision", "tf32", "--out", out)...)
	if r.code != 0 || !strings.Contains(r.stdout, "device: cuda") || !strings.Contains(r.stdout, "products in tf32") {
		t.Fatalf("train --device cuda: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if e := runBin(t, "eval", "--checkpoint", out, "--device", "cuda"); e.code != 0 || !strings.Contains(e.stdout, "val accuracy") {
		t.Errorf("eval --device cuda: exit %d, stdout %q, stderr %q", e.code, e.stdout, e.stderr)
	}
	cpu := runBin(t, "generate", "--checkpoint", out, "--prompt-ids", "2,3,1", "--tokens", "5", "--temperature", "0")
	gpu := runBin(t, "generate", "--checkpoint", out, "--prompt-ids", "2,3,1", "--tokens", "5", "--temperature", "0", "--device", "cuda")
	if cpu.code != 0 || gpu.code != 0 || gpu.stdout != cpu.stdout {
		t.Errorf("generate: cpu exit %d %q, cuda exit %d %q (stderr %q)", cpu.code, cpu.stdout, gpu.code, gpu.stdout, gpu.stderr)
	}
	for _, prec := range []string{"fp32", "bf16"} {
		b := runBin(t, append(benchTiny, "--device", "cuda", "--precision", prec, "--json")...)
		var got map[string]any
		if b.code != 0 || json.Unmarshal([]byte(b.stdout), &got) != nil {
			t.Fatalf("bench --device cuda --precision %s: exit %d\n%s\n%s", prec, b.code, b.stdout, b.stderr)
		}
		for _, k := range []string{"tokens_per_s", "mfu", "sgemm_gflops", "decode_tokens_per_s_b1", "decode_tokens_per_s_b16"} {
			if v, _ := got[k].(float64); !(v > 0) {
				t.Errorf("%s: %s = %v, want > 0", prec, k, got[k])
			}
		}
		if got["precision"] != prec || got["cuda_graph"] != "true" {
			t.Errorf("%s: precision %v, graph %v", prec, got["precision"], got["cuda_graph"])
		}
		if ops, _ := got["ops"].([]any); len(ops) < 10 {
			t.Errorf("%s: %d op rows", prec, len(ops))
		}
	}
}
