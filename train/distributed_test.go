package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/internal/mpi"
	"github.com/mambago/mamba/internal/mpi/mpitest"
	"github.com/mambago/mamba/optim"
)

// A rank of the tests below is this test binary started by mpirun with
// TRAIN_RANK_HELPER=DIR: it trains the fake model with the config in
// TRAIN_RANK_CONFIG (or resumes DIR with the overrides in TRAIN_RANK_SET), and
// TRAIN_RANK_INJECT=what:rank:call makes rank `rank` misbehave at its Step call
// `call`: "fail" returns an error, "signal" sends itself SIGTERM; "nodata" makes
// that rank's data unusable at start-up and "unsplit" gives every rank a source that
// cannot be split. TRAIN_RANK_PIECE sets the bytes per collective call.
func rankHelper(out string) int {
	l, ok, err := mpi.Detect(os.Getenv)
	if err != nil || !ok {
		fmt.Fprintln(os.Stderr, "rank helper not under mpirun:", err)
		return 1
	}
	w, err := mpi.Init(l)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if n, err := strconv.Atoi(os.Getenv("TRAIN_RANK_PIECE")); err == nil {
		pieceBytes = n
	}
	var what string
	var rank, call int
	if s := os.Getenv("TRAIN_RANK_INJECT"); s != "" {
		parts := strings.Split(s, ":")
		what = parts[0]
		rank, _ = strconv.Atoi(parts[1])
		call, _ = strconv.Atoi(parts[2])
	}
	o := fakeOptions(out)
	o.Comm = w
	if what != "" && w.Rank() == rank {
		o.Backend = fakeBackend{hook: func(m *fakeModel) {
			switch what {
			case "fail":
				m.failAt = call
			case "signal":
				m.onStep = func(n int) {
					if n == call {
						syscall.Kill(os.Getpid(), syscall.SIGTERM)
						time.Sleep(50 * time.Millisecond) // let the signal land in this step
					}
				}
			}
		}}
		if what == "nodata" {
			o.Data = func(Config) (*Dataset, error) { return nil, errors.New("no data on this rank") }
		}
	}
	if what == "unsplit" {
		o.Data = func(c Config) (*Dataset, error) {
			ds, err := fakeData(c)
			if err == nil {
				ds.Train = unsplittable{ds.Train}
			}
			return ds, err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var cfg Config
	if os.Getenv("TRAIN_RANK_RESUME") != "" {
		o.Resume = true
		cfg, err = ResumeConfig(out, strings.Fields(os.Getenv("TRAIN_RANK_SET")))
	} else {
		err = json.Unmarshal([]byte(os.Getenv("TRAIN_RANK_CONFIG")), &cfg)
	}
	if err == nil {
		_, err = Run(ctx, cfg, o)
	} else {
		err = StartFailed(w, err)
	}
	code := 0
	var ie *InputError
	switch {
	case err == nil:
	case errors.Is(err, ErrInterrupted):
		code = 130
	case errors.As(err, &ie):
		code = 2
	default:
		code = 1
	}
	if err != nil && (w.Rank() == 0 || !Agreed(err)) {
		fmt.Fprintln(os.Stderr, "train:", err)
	}
	if err != nil && !Agreed(err) {
		w.Abort(code)
	}
	w.Finalize()
	return code
}

// unsplittable hides a source's Interleave.
type unsplittable struct{ data.Source }

// rankRun runs the fake config cfg on n ranks into out; env adds variables.
func rankRun(t *testing.T, n int, out string, cfg Config, env ...string) (code int, stderr string) {
	t.Helper()
	cmd := mpitest.Command(t, n, "-q", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TRAIN_RANK_HELPER="+out, "TRAIN_RANK_CONFIG="+string(cfg.JSON()))
	cmd.Env = append(cmd.Env, env...)
	var e bytes.Buffer
	cmd.Stderr = &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			return ee.ExitCode(), e.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, e.String()
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%d ranks still running after 2 minutes (a rank hangs): %s", n, e.String())
	}
	return 0, ""
}

// sameRun checks that run directory got ended where want did: metrics, weights,
// optimizer moments, tokens and data cursor, bit for bit.
func sameRun(t *testing.T, got, want string, steps int) {
	t.Helper()
	sameTrajectory(t, readMetrics(t, got), readMetrics(t, want))
	final := func(dir string) string { return stepDir(filepath.Join(dir, checkpointsDir), steps) }
	for _, f := range []string{"model.safetensors", optimizerFile} {
		if !bytes.Equal(fileBytes(t, filepath.Join(final(got), f)), fileBytes(t, filepath.Join(final(want), f))) {
			t.Errorf("%s differs from the one-process run", f)
		}
	}
	a, err := readState(final(got))
	if err != nil {
		t.Fatal(err)
	}
	b, err := readState(final(want))
	if err != nil {
		t.Fatal(err)
	}
	if a.Tokens != b.Tokens || a.Cursor != b.Cursor {
		t.Errorf("tokens %d, cursor %+v; the one-process run has %d, %+v", a.Tokens, a.Cursor, b.Tokens, b.Cursor)
	}
}

// The mean loss of a step adds the micro-batch losses in global order m = j·N + q
// (local micro-batch j of rank q), as one process does: values whose float64 sum
// depends on the order tell.
func TestGlobalLossOrder(t *testing.T) {
	byM := []float64{1e16, 1, -1e16, 1, 3, 0.5} // global micro-batches m = 0..5
	const n, g = 2, 3
	all := make([]float64, n*(g+1)) // rank q's block: its g losses, then its stop flag
	for m, l := range byM {
		all[m%n*(g+1)+m/n] = l
	}
	want := 0.0
	for _, l := range byM {
		want += l
	}
	if got := globalLoss(all, g, n); got != want {
		t.Errorf("global loss sum %v, one process %v", got, want)
	}
}

func parallelConfig(accum int) Config {
	c := fakeConfig()
	c.Optim.GradAccum = accum
	c.Run.MaxSteps, c.Run.CheckpointEvery, c.Run.EvalEvery = 12, 4, 6
	return c
}

// N ranks with grad_accum G train bitwise as one process with grad_accum G·N: same
// losses, gradient norms, evaluations, weights, moments and data cursor. The
// gradient goes in pieces of a few elements (many calls per exchange), and 3 ranks
// do not divide it evenly.
func TestDataParallelIsBitwiseOneProcess(t *testing.T) {
	refs := map[int]string{}
	for _, c := range []struct{ n, g, piece int }{{2, 2, 16}, {4, 1, 8}, {3, 2, 4096}} {
		if refs[c.n*c.g] == "" {
			refs[c.n*c.g] = t.TempDir()
			if _, err := Run(context.Background(), parallelConfig(c.n*c.g), fakeOptions(refs[c.n*c.g])); err != nil {
				t.Fatal(err)
			}
		}
		out := t.TempDir()
		if code, stderr := rankRun(t, c.n, out, parallelConfig(c.g), fmt.Sprintf("TRAIN_RANK_PIECE=%d", c.piece)); code != 0 {
			t.Fatalf("%d ranks: exit %d: %s", c.n, code, stderr)
		}
		t.Run(fmt.Sprintf("ranks=%d,accum=%d", c.n, c.g), func(t *testing.T) { sameRun(t, out, refs[c.n*c.g], 12) })
	}
}

// A SIGTERM that reaches one rank stops every rank after the same step, with a
// checkpoint; resumed on another number of ranks with the same global batch, the run
// ends bitwise where the uninterrupted one-process run ends.
func TestDataParallelInterruptResumesOnOtherRanks(t *testing.T) {
	ref := t.TempDir()
	if _, err := Run(context.Background(), parallelConfig(4), fakeOptions(ref)); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, stderr := rankRun(t, 2, out, parallelConfig(2), "TRAIN_RANK_INJECT=signal:1:11") // rank 1, step 6
	if code != 130 || strings.Count(stderr, "train:") != 1 || !strings.Contains(stderr, "interrupted") {
		t.Fatalf("after SIGTERM to rank 1: exit %d, stderr %q; want 130 and one line from rank 0", code, stderr)
	}
	steps, _ := checkpointSteps(filepath.Join(out, checkpointsDir))
	if len(steps) == 0 || steps[0] != 6 {
		t.Fatalf("checkpoints %v after an interrupt in step 6", steps)
	}
	if code, stderr := rankRun(t, 4, out, Config{}, "TRAIN_RANK_RESUME=1", "TRAIN_RANK_SET=optim.grad_accum=1"); code != 0 {
		t.Fatalf("resume on 4 ranks: exit %d: %s", code, stderr)
	}
	sameRun(t, out, ref, 12)
}

// A rank that fails on its own takes the job down: no rank waits for it.
func TestDataParallelRankFailureAbortsTheJob(t *testing.T) {
	code, stderr := rankRun(t, 3, t.TempDir(), parallelConfig(2), "TRAIN_RANK_INJECT=fail:2:5")
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "fake failure at call 5") {
		t.Fatalf("rank 2 failing: exit %d, stderr %q; want exit 1 and one line naming the error", code, stderr)
	}
}

// Bad set-ups end every rank with status 2 and one line from rank 0.
func TestDataParallelBadSetupsExitTwo(t *testing.T) {
	for _, c := range []struct {
		name, env, want string
	}{
		{"data missing on rank 1", "TRAIN_RANK_INJECT=nodata:1:0", "rank 1: no data on this rank"},
		{"unsplittable data", "TRAIN_RANK_INJECT=unsplit:0:0", "cannot be split among 2 ranks"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		code, stderr := rankRun(t, 2, out, parallelConfig(1), c.env)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line naming %q", c.name, code, stderr, c.want)
		}
	}
}

// benchWorld is the MPI job of a benchmark rank (nil outside mpirun).
var benchWorld *mpi.World

// benchRank runs the benchmarks as one rank of an MPI job.
func benchRank(m *testing.M) int {
	l, ok, err := mpi.Detect(os.Getenv)
	if err == nil && ok {
		benchWorld, err = mpi.Init(l)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if n, err := strconv.Atoi(os.Getenv("TRAIN_RANK_PIECE")); err == nil {
		pieceBytes = n
	}
	code := m.Run()
	if benchWorld != nil {
		benchWorld.Finalize()
	}
	return code
}

// BenchmarkDataParallelReduce measures the communication of one data-parallel step
// alone (no compute, so nothing overlaps): G reduce-scatters and the allgather of the
// gradient, for the parameter counts of the model ladder (configs/configs.go). ns/op
// is the time per step, MB/s the bytes a rank sends per second. Every rank must run
// as many steps, so the iteration count is fixed (experiments/mpi/run.sh runs it):
//
//	go test -c -o train.test ./train
//	TRAIN_RANK_BENCH=1 mpirun -np 2 ./train.test -test.run '^$' -test.bench DataParallelReduce -test.benchtime 5x
func BenchmarkDataParallelReduce(b *testing.B) {
	w := benchWorld
	if w == nil {
		b.Skip("not run: needs mpirun and TRAIN_RANK_BENCH=1 (see the comment above, or experiments/mpi/run.sh)")
	}
	for _, m := range []struct {
		name   string
		params int
	}{{"0.1m", 114560}, {"2m", 2063040}, {"8m", 7812480}, {"30m", 29105920}, {"130m", 129135360}} {
		for _, g := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/accum=%d", m.name, g), func(b *testing.B) {
				n := []float64{float64(b.N)}
				all := make([]float64, w.Size())
				if err := mpi.Allgather(w, n, all); err != nil {
					b.Fatal(err)
				}
				for _, x := range all {
					if x != n[0] {
						b.Fatalf("ranks run %v steps: give -test.benchtime Nx", all)
					}
				}
				grad := make([]float32, m.params)
				for i := range grad {
					grad[i] = 1
				}
				d := newDist(w, []optim.Param{{Name: "all", Grad: grad}}, g, &Summary{})
				defer d.close()
				d.signals, d.stop = context.Background(), func() {}
				step := func() {
					for range g {
						d.add(0)
					}
					if _, err := d.reduce(0); err != nil {
						b.Fatal(err)
					}
				}
				step() // touch every buffer
				b.SetBytes(int64(d.bytesPerStep()))
				b.ResetTimer()
				for range b.N {
					step()
				}
			})
		}
	}
}
