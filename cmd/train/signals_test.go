//go:build linux

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowSteps makes a run whose steps take a second or more (32768 tokens).
var slowSteps = []string{"--set", "model.d_model=16", "--set", "model.n_layer=2", "--set", "model.d_state=4",
	"--set", "data.seq_len=8192", "--set", "data.batch_size=4", "--set", "data.eval_batches=1",
	"--set", "run.max_steps=100000", "--set", "run.log_every=1", "--set", "optim.warmup_steps=0"}

// started starts cmd in a process group of its own, with its stderr in the
// returned buffer.
func started(t *testing.T, cmd *exec.Cmd) *bytes.Buffer {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return &stderr
}

// waitFor polls until ok or a minute has passed.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for start := time.Now(); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("no %s after a minute", what)
		}
	}
}

// nonEmpty reports whether the file at path has bytes.
func nonEmpty(path string) func() bool {
	return func() bool { st, err := os.Stat(path); return err == nil && st.Size() > 0 }
}

// waitExit waits at most limit for cmd to end and returns how it ended.
func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration) syscall.WaitStatus {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.Sys().(syscall.WaitStatus)
	case <-time.After(limit):
		t.Fatalf("%s still running %s after the signal", filepath.Base(cmd.Path), limit)
	}
	return 0
}

// A second SIGINT/SIGTERM ends train at once, in the middle of a long step;
// eval and generate have nothing to save and end at the first.
func TestSecondSignalEndsAtOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, append(slowSteps, "--out", out)...)
	started(t, cmd)
	waitFor(t, "metrics line", nonEmpty(filepath.Join(out, "metrics.jsonl")))
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	if ws := waitExit(t, cmd, 5*time.Second); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("train after SIGTERM then SIGINT: %v, want killed by the second signal", ws)
	}

	run := tinyTrained(t)
	for _, args := range [][]string{
		{"eval", "--checkpoint", run, "--set", "data.eval_batches=100000000"},
		{"generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "100000000"},
	} {
		cmd := exec.Command(bin, args...)
		started(t, cmd)
		time.Sleep(time.Second)
		cmd.Process.Signal(syscall.SIGTERM)
		if ws := waitExit(t, cmd, 5*time.Second); !ws.Signaled() {
			t.Errorf("%s after SIGTERM: %v, want ended by it", args[0], ws)
		}
	}
}

// slowSweep is a sweep of one run of slow steps.
const slowSweep = `{
  "base": {
    "model": {"vocab_size": 16, "d_state": 4},
    "data": {"task": "selective_copying", "vocab": 16, "tokens": 2, "seq_len": 8192, "batch_size": 4, "eval_batches": 1},
    "run": {"log_every": 1}
  },
  "archs": ["mamba"],
  "sizes": [{"name": "slow", "model": {"d_model": 16, "n_layer": 2}}],
  "budget": {"tokens_per_param": [1000]},
  "seeds": [1]
}`

// Ctrl-C at a terminal signals the sweep's whole process group: the run gets
// one SIGTERM from the sweep (not the terminal's SIGINT as well, which would
// be a second signal and kill it), checkpoints and exits 130, and so does the
// sweep. Two Ctrl-Cs end the sweep at once, and its run with it.
func TestSweepCtrlC(t *testing.T) {
	dir := t.TempDir()
	config := writeFile(t, dir, "slow.json", slowSweep)
	out := filepath.Join(dir, "sweep")
	run := filepath.Join(out, "mamba-slow-tpp1000-s1")

	cmd := exec.Command(bin, "sweep", "--config", config, "--out", out)
	started(t, cmd)
	waitFor(t, "metrics line of the run", nonEmpty(filepath.Join(run, "metrics.jsonl")))
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	if ws := waitExit(t, cmd, time.Minute); ws.ExitStatus() != 130 {
		t.Fatalf("sweep after Ctrl-C: %v, want exit 130", ws)
	}
	log, _ := os.ReadFile(filepath.Join(run, "train.log"))
	if !strings.Contains(string(log), "interrupted at step") || !hasCheckpoint(run) {
		t.Fatalf("the run did not checkpoint on the sweep's SIGTERM: train.log:\n%s", log)
	}

	cmd = exec.Command(bin, "sweep", "--config", config, "--out", out)
	started(t, cmd)
	lines := func() int {
		b, _ := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
		return bytes.Count(b, []byte("\n"))
	}
	before := lines()
	waitFor(t, "resumed run's line", func() bool { return lines() > before })
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	time.Sleep(100 * time.Millisecond)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	if ws := waitExit(t, cmd, 5*time.Second); !ws.Signaled() {
		t.Errorf("sweep after two Ctrl-Cs: %v, want killed by the second", ws)
	}
	waitUnlocked(t, out) // the run is gone too
}
