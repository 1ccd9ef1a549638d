package train

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mambago/mamba/train/killtest"
)

// TestMain doubles as the child process of TestSIGKILLResumeIsBitwise: with
// TRAIN_KILL_HELPER=DIR set, the test binary trains the kill config into DIR
// (resuming when DIR holds a valid checkpoint) and exits. With TRAIN_RANK_HELPER=DIR
// it is a rank of a data-parallel test run, with TRAIN_RANK_BENCH=1 a rank running
// BenchmarkDataParallelReduce (distributed_test.go).
func TestMain(m *testing.M) {
	if out := os.Getenv("TRAIN_KILL_HELPER"); out != "" {
		os.Exit(killHelper(out))
	}
	if out := os.Getenv("TRAIN_RANK_HELPER"); out != "" {
		os.Exit(rankHelper(out))
	}
	if os.Getenv("TRAIN_RANK_BENCH") != "" {
		os.Exit(benchRank(m))
	}
	os.Exit(m.Run())
}

func killConfig() Config {
	c := fakeConfig()
	c.Run.MaxSteps, c.Run.CheckpointEvery, c.Run.EvalEvery, c.Run.KeepCheckpoints = 60, 3, 7, 2
	return c
}

func killHelper(out string) int {
	o := fakeOptions(out)
	// Slow steps down so that kills land anywhere: in a step, in a checkpoint write.
	o.Backend = fakeBackend{hook: func(m *fakeModel) { m.onStep = func(int) { time.Sleep(time.Millisecond) } }}
	cfg := killConfig()
	if _, _, err := LatestCheckpoint(out); err == nil {
		o.Resume = true
		if cfg, err = ResumeConfig(out, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if _, err := Run(context.Background(), cfg, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A run killed with SIGKILL at random moments and resumed each time ends with
// bitwise the same metrics, weights and optimizer state as an uninterrupted run.
// Each kill lands a random number of logged steps after the (re)start, plus a
// random fraction of a step, so it hits steps and checkpoint writes alike.
func TestSIGKILLResumeIsBitwise(t *testing.T) {
	ref := t.TempDir()
	if _, err := Run(context.Background(), killConfig(), fakeOptions(ref)); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	lines := func() int {
		raw, _ := os.ReadFile(filepath.Join(out, metricsJSONL))
		return bytes.Count(raw, []byte("\n"))
	}
	rng := rand.New(rand.NewPCG(42, 1))
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt == 60 {
			t.Fatalf("run did not finish after %d kills", kills)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TRAIN_KILL_HELPER="+out)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		target := lines() + 1 + rng.IntN(10)
		delay := time.Duration(rng.IntN(2000)) * time.Microsecond
		killed, err := killtest.Run(cmd, lines, target, delay, 200*time.Microsecond)
		if killed {
			kills++
			continue
		}
		if err != nil {
			t.Fatalf("child failed: %v: %s", err, stderr.Bytes())
		}
		break
	}
	if kills < 3 {
		t.Fatalf("only %d kills landed; the test did not exercise resume", kills)
	}
	t.Logf("finished after %d SIGKILLs", kills)
	sameTrajectory(t, readMetrics(t, out), readMetrics(t, ref))
	final := func(dir string) string { return stepDir(filepath.Join(dir, checkpointsDir), killConfig().Run.MaxSteps) }
	for _, f := range []string{"model.safetensors", optimizerFile} {
		if !bytes.Equal(fileBytes(t, filepath.Join(final(out), f)), fileBytes(t, filepath.Join(final(ref), f))) {
			t.Errorf("%s differs from the uninterrupted run", f)
		}
	}
}
