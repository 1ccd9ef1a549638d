package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mambago/mamba/internal/mpi/mpitest"
)

// mpiRun runs the train binary on n ranks (mpirun -q: only the ranks' own output).
func mpiRun(t *testing.T, n int, args ...string) result {
	t.Helper()
	return wait(t, mpiCommand(t, n, args...), nil)
}

func mpiCommand(t *testing.T, n int, args ...string) *exec.Cmd {
	t.Helper()
	return mpitest.Command(t, n, "-q", append([]string{bin}, args...)...)
}

// wait runs cmd, calling meanwhile (when not nil) on another goroutine once it
// has started, and fails the test if it runs for more than 3 minutes.
func wait(t *testing.T, cmd *exec.Cmd, meanwhile func()) result {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if meanwhile != nil {
		go meanwhile()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%v still running after 3 minutes (a rank hangs): %s", cmd.Args, e.String())
	}
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

func sameWeights(t *testing.T, got, want string) {
	t.Helper()
	a, _ := os.ReadFile(filepath.Join(lastCheckpoint(t, want), "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(lastCheckpoint(t, got), "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("final weights of %s differ from %s", got, want)
	}
}

func sameLosses(t *testing.T, got, want string) {
	t.Helper()
	if g, w := readLosses(t, got), readLosses(t, want); strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("metrics differ:\n got %q\nwant %q", g, w)
	}
}

// The real model on 2 ranks × grad_accum 2 and on 4 ranks × grad_accum 1 trains
// bitwise as one process with grad_accum 4: same losses, gradient norms, validation
// losses and final weights.
func TestMPIRanksEqualOneProcess(t *testing.T) {
	ref := filepath.Join(t.TempDir(), "ref")
	if r := runBin(t, append(tinyRun(8, 4, "--set", "optim.grad_accum=4"), "--out", ref)...); r.code != 0 {
		t.Fatalf("one process: exit %d: %s", r.code, r.stderr)
	}
	for _, c := range []struct{ n, accum int }{{2, 2}, {4, 1}} {
		out := filepath.Join(t.TempDir(), "run")
		r := mpiRun(t, c.n, append(tinyRun(8, 4, "--set", fmt.Sprintf("optim.grad_accum=%d", c.accum)), "--out", out)...)
		if r.code != 0 {
			t.Fatalf("%d ranks: exit %d: %s", c.n, r.code, r.stderr)
		}
		if want := fmt.Sprintf("data parallel: %d ranks", c.n); !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "ms/step") {
			t.Errorf("%d ranks: the log does not show the ranks and the communication time:\n%s", c.n, r.stdout)
		}
		sameLosses(t, out, ref)
		sameWeights(t, out, ref)
	}
}

// Bad set-ups of a data-parallel run end every rank with status 2 and one line.
func TestMPIBadSetupsExitTwo(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := func(extra ...string) []string { return append(tinyRun(4, 0, "--out", out), extra...) }
	missing := writeFile(t, dir, "missing.json", `{"data": {"task": "shards", "train": "/nonexistent/train.tok", "valid": "/nonexistent/valid.tok"}}`)
	for _, c := range []struct {
		name, env string
		args      []string
		want      string
	}{
		{"library missing", "MAMBA_MPI_LIB=/nonexistent/libmpi.so.40", args(), "MAMBA_MPI_LIB"},
		// mpirun's MPMD form: rank 0 and rank 1 get different command lines.
		{"configs differ", "", append(args(":", "-np", "1", bin), args("--set", "run.seed=2")...), "rank 1 was started with a config other than rank 0's"},
		{"bad config", "", args("--set", "optim.lrr=1"), `unknown key "optim.lrr"`},
		{"data missing", "", args("--config", missing), "/nonexistent/train.tok"},
	} {
		n := 2
		if c.name == "configs differ" {
			n = 1 // and one more after the colon
		}
		cmd := mpiCommand(t, n, c.args...)
		cmd.Env = append(os.Environ(), c.env)
		checkBadInput(t, c.name, wait(t, cmd, nil), c.want, out)
	}
}

// ranks returns the processes that mpirun (pid) started.
func ranks(pid int) []int {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var ps []int
	for _, f := range strings.Fields(string(raw)) {
		if p, err := strconv.Atoi(f); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// SIGKILL of one rank (either) ends the job; resumed from the last checkpoint, on 2
// ranks or in one process with the same global batch, the run ends bitwise where an
// uninterrupted one-process run ends.
func TestMPIKilledRankResumesBitwise(t *testing.T) {
	const steps = 40
	ref := filepath.Join(t.TempDir(), "ref")
	if r := runBin(t, append(tinyRun(steps, 3, "--set", "optim.grad_accum=2"), "--out", ref)...); r.code != 0 {
		t.Fatalf("reference run: exit %d: %s", r.code, r.stderr)
	}
	out := filepath.Join(t.TempDir(), "killed")
	rng := rand.New(rand.NewPCG(5, 5))
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt == 30 {
			t.Fatalf("run did not finish after %d kills", kills)
		}
		args := append(tinyRun(steps, 3), "--out", out)
		if hasCheckpoint(out) {
			args = []string{"--resume", "--out", out, "--set", "optim.grad_accum=1"}
		}
		if kills == 2 { // finish in one process: same global batch
			r := runBin(t, "--resume", "--out", out, "--set", "optim.grad_accum=2")
			if r.code != 0 {
				t.Fatalf("resume in one process: exit %d: %s", r.code, r.stderr)
			}
			break
		}
		cmd := mpiCommand(t, 2, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		target := metricLines(out) + 1 + rng.IntN(8)
		victim := rng.IntN(2)
		var err error
		killed := false
	watch:
		for {
			select {
			case err = <-done:
				break watch
			case <-time.After(time.Millisecond):
				if ps := ranks(cmd.Process.Pid); metricLines(out) >= target && len(ps) == 2 {
					time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					killed = syscall.Kill(ps[victim], syscall.SIGKILL) == nil
					select {
					case err = <-done:
					case <-time.After(time.Minute):
						cmd.Process.Kill()
						t.Fatalf("mpirun still running a minute after rank %d was killed", victim)
					}
					break watch
				}
			}
		}
		if killed && err != nil {
			kills++
			t.Logf("killed rank %d at metric line %d: %v, stderr %q", victim, target, err, stderr.String())
			continue
		}
		if err != nil {
			t.Fatalf("run %v: %v: %s", args, err, stderr.Bytes())
		}
		t.Fatalf("the run finished before %d kills landed", 2)
	}
	sameLosses(t, out, ref)
	sameWeights(t, out, ref)
}

// SIGUSR1 to mpirun reaches every rank (mpirun kills the ranks on SIGINT and
// SIGTERM): they stop after the same step, rank 0 checkpoints, and all exit 130
// with one line.
func TestMPISIGUSR1CheckpointsAndExits(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd := mpiCommand(t, 2, append(tinyRun(100000, 0), "--out", out)...)
	r := wait(t, cmd, func() {
		for start := time.Now(); metricLines(out) < 2 && time.Since(start) < time.Minute; {
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGUSR1)
	})
	if r.code != 130 || r.stderr != "train: interrupted\n" {
		t.Fatalf("after SIGUSR1: exit %d, stderr %q; want exit 130 and one line", r.code, r.stderr)
	}
	if !hasCheckpoint(out) {
		t.Fatal("no checkpoint written on SIGUSR1")
	}
}

// Only training is data-parallel: eval, generate, prepare, bench and sweep
// launched on several ranks exit 2 with one line (rank 0's) instead of
// running once per rank.
func TestMPIOneProcessCommands(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"eval", "--checkpoint", dir},
		{"generate", "--checkpoint", dir, "--prompt-ids", "1"},
		{"prepare", "--modality", "text", "--input", writeFile(t, dir, "in.txt", "text"), "--out", filepath.Join(dir, "shards")},
		{"bench", "--steps", "1"},
		{"sweep", "--config", smokeSweep, "--out", filepath.Join(dir, "sweep")},
	} {
		checkBadInput(t, args[0], mpiRun(t, 2, args...), args[0]+": runs in one process, but mpirun started 2: run it without mpirun", filepath.Join(dir, "shards"))
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("the refused commands wrote %d entries", len(es)-1)
	}
}
