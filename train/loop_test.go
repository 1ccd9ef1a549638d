package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/internal/testutil"
)

func fakeOptions(out string) Options {
	return Options{Out: out, Backend: fakeBackend{}, Data: fakeData}
}

// readMetrics returns the metric lines of a run directory.
func readMetrics(t *testing.T, out string) []Metric {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, metricsJSONL))
	if err != nil {
		t.Fatal(err)
	}
	var ms []Metric
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var m Metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		ms = append(ms, m)
	}
	return ms
}

// sameTrajectory compares the deterministic columns of two metric logs bitwise.
func sameTrajectory(t *testing.T, got, want []Metric) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d metric lines, want %d", len(got), len(want))
	}
	eq := func(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	for i := range want {
		g, w := got[i], want[i]
		if g.Step != w.Step || !eq(g.Loss, w.Loss) || g.LR != w.LR || !eq(g.GradNorm, w.GradNorm) ||
			g.Skipped != w.Skipped || !eq(g.ValLoss, w.ValLoss) || !eq(g.ValAccuracy, w.ValAccuracy) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Fatalf("metric line %d differs:\n got %s\nwant %s", i, gj, wj)
		}
	}
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRunTrainsAndLogs(t *testing.T) {
	out := t.TempDir()
	cfg := fakeConfig()
	cfg.Run.KeepCheckpoints = 2
	var stdout bytes.Buffer
	o := fakeOptions(out)
	o.Stdout = &stdout
	s, err := Run(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ms := readMetrics(t, out)
	if len(ms) != cfg.Run.MaxSteps {
		t.Fatalf("%d metric lines, want %d (log_every 1)", len(ms), cfg.Run.MaxSteps)
	}
	testutil.CheckErr(t, fmt.Sprintf("loss did not fall to half: first %v, last", *ms[0].Loss), *ms[len(ms)-1].Loss, *ms[0].Loss/2)
	for _, m := range ms {
		evaluated := m.Step%cfg.Run.EvalEvery == 0
		if (m.ValLoss != nil) != evaluated || (m.ValAccuracy != nil) != evaluated || (m.ValBitsPerByte != nil) != evaluated {
			t.Errorf("step %d: val metrics present = %v, want %v", m.Step, m.ValLoss != nil, evaluated)
		}
		if m.ValLoss != nil {
			testutil.CheckErr(t, fmt.Sprintf("step %d: bits/token %v vs loss/ln2", m.Step, *m.ValBitsPerTok), math.Abs(*m.ValBitsPerTok-*m.ValLoss/math.Ln2), 1e-12)
		}
		if !(m.TokensPerS > 0) || !(m.ElapsedS > 0) {
			t.Errorf("step %d: tokens_per_s %v, elapsed_s %v", m.Step, m.TokensPerS, m.ElapsedS)
		}
	}
	csv := strings.Split(strings.TrimSpace(string(fileBytes(t, filepath.Join(out, metricsCSV)))), "\n")
	if len(csv) != 1+cfg.Run.MaxSteps || csv[0] != strings.Join(csvHeader, ",") {
		t.Errorf("metrics.csv has %d lines (header %q), want %d", len(csv), csv[0], 1+cfg.Run.MaxSteps)
	}
	steps, _ := checkpointSteps(filepath.Join(out, checkpointsDir))
	if len(steps) != 2 || steps[0] != 20 || steps[1] != 15 {
		t.Errorf("checkpoints kept = %v, want [20 15]", steps)
	}
	if s.Steps != 20 || s.Checkpoint != stepDir(filepath.Join(out, checkpointsDir), 20) || s.Eval.ValAccuracy == nil {
		t.Errorf("summary = %+v", s)
	}
	first, _, _ := strings.Cut(stdout.String(), "\n")
	if !strings.HasPrefix(first, "config {") || !strings.Contains(stdout.String(), "val accuracy") {
		t.Errorf("stdout does not start with the config line or lacks the summary table:\n%s", stdout.String())
	}
	var st trainerState
	json.Unmarshal(fileBytes(t, filepath.Join(s.Checkpoint, stateFile)), &st)
	if c, err := ParseConfig(st.Config, nil); err != nil || string(c.JSON()) != string(cfg.JSON()) {
		t.Errorf("checkpoint config = %s (%v), want the resolved config", st.Config, err)
	}
}

// cancelAt is a hook that cancels ctx when the model has taken n steps, as a
// SIGINT arriving during step n would.
func cancelAt(n int, cancel context.CancelFunc) func(*fakeModel) {
	return func(m *fakeModel) {
		m.onStep = func(k int) {
			if k == n {
				cancel()
			}
		}
	}
}

func TestInterruptCheckpointsAndResumesBitwise(t *testing.T) {
	cfg := fakeConfig()
	cfg.Optim.GradAccum = 2
	ref, out, s, err := interrupted(t, cfg, func(o *Options, cancel context.CancelFunc) {
		o.Backend = fakeBackend{hook: cancelAt(2*7, cancel)} // during update 7
	})
	if !errors.Is(err, ErrInterrupted) || s.Steps != 7 {
		t.Fatalf("interrupted run: steps %d, err %v; want 7, ErrInterrupted", s.Steps, err)
	}
	if err := VerifyCheckpoint(stepDir(filepath.Join(out, checkpointsDir), 7)); err != nil {
		t.Fatalf("no checkpoint at the interrupted step: %v", err)
	}
	resumeAndCompare(t, cfg, out, ref)
}

// interrupted runs cfg to its end in ref, and in out with the options edit
// sets up to call cancel (as a signal would); it returns the directories and
// the second run's outcome.
func interrupted(t *testing.T, cfg Config, edit func(o *Options, cancel context.CancelFunc)) (ref, out string, s *Summary, err error) {
	t.Helper()
	ref, out = t.TempDir(), t.TempDir()
	if _, err := Run(context.Background(), cfg, fakeOptions(ref)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := fakeOptions(out)
	edit(&o, cancel)
	s, err = Run(ctx, cfg, o)
	return ref, out, s, err
}

func TestNonFiniteStepsAreSkippedThenStop(t *testing.T) {
	cfg := fakeConfig()
	cfg.Run.MaxNonFinite = 3
	out := t.TempDir()
	o := fakeOptions(out)
	o.Backend = fakeBackend{hook: func(m *fakeModel) { m.nanAt = map[int]bool{4: true, 9: true, 10: true, 11: true} }}
	s, err := Run(context.Background(), cfg, o)
	if err == nil || !strings.Contains(err.Error(), "3 steps in a row") {
		t.Fatalf("err = %v, want a stop after 3 non-finite steps in a row", err)
	}
	if s.Steps != 11 || s.Skipped != 4 {
		t.Errorf("stopped at step %d with %d skipped, want 11 and 4", s.Steps, s.Skipped)
	}
	ms := readMetrics(t, out)
	if ms[3].Loss != nil || ms[3].Skipped != 1 || ms[4].Loss == nil {
		t.Errorf("step 4 should be logged with a null loss and skipped=1: %+v / %+v", ms[3], ms[4])
	}
	steps, _ := checkpointSteps(filepath.Join(out, checkpointsDir))
	if len(steps) == 0 || steps[0] != 10 {
		t.Errorf("checkpoints = %v, want the last good one (10) kept", steps)
	}
}

func TestFreezeAndInitFrom(t *testing.T) {
	cfg := fakeConfig()
	base := t.TempDir()
	if _, err := Run(context.Background(), cfg, fakeOptions(base)); err != nil {
		t.Fatal(err)
	}
	trained, err := fakeBackend{}.LoadModel(stepDir(filepath.Join(base, checkpointsDir), cfg.Run.MaxSteps))
	if err != nil {
		t.Fatal(err)
	}
	ft := cfg
	ft.Run.Freeze = []string{"backbone.w"}
	ft.Run.MaxSteps = 5
	out := t.TempDir()
	o := fakeOptions(out)
	o.InitFrom = base // a run directory: its newest checkpoint
	s, err := Run(context.Background(), ft, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Trainable != 1 || s.Params != cfg.Model.VocabSize+1 {
		t.Errorf("trainable %d of %d, want 1 of %d", s.Trainable, s.Params, cfg.Model.VocabSize+1)
	}
	tuned, err := fakeBackend{}.LoadModel(s.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	w0, w1 := trained.Params()[0].Value, tuned.Params()[0].Value
	for i := range w0 {
		if w0[i] != w1[i] {
			t.Fatalf("frozen w[%d] changed: %v → %v", i, w0[i], w1[i])
		}
	}
	if trained.Params()[1].Value[0] == tuned.Params()[1].Value[0] {
		t.Error("the unfrozen bias did not change")
	}
	ost, err := readOptimizer(s.Checkpoint, []string{"backbone.b"})
	if err != nil || ost.Updates != 5 {
		t.Errorf("fine-tuning optimizer has %d updates (%v), want a fresh optimizer with 5", ost.Updates, err)
	}

	bad := cfg
	bad.Run.Freeze = []string{"backbone.nope*"}
	if _, err := Run(context.Background(), bad, fakeOptions(t.TempDir())); err == nil || !strings.Contains(err.Error(), "matches no parameter") {
		t.Errorf("freeze pattern matching nothing: err = %v", err)
	}
}

func TestSetupRefusesBadInput(t *testing.T) {
	cfg := fakeConfig()
	used := t.TempDir()
	if _, err := Run(context.Background(), cfg, fakeOptions(used)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	corrupt := t.TempDir()
	cfg.Run.MaxSteps = 5
	if _, err := Run(context.Background(), cfg, fakeOptions(corrupt)); err != nil {
		t.Fatal(err)
	}
	ck := stepDir(filepath.Join(corrupt, checkpointsDir), 5)
	raw := fileBytes(t, filepath.Join(ck, optimizerFile))
	os.WriteFile(filepath.Join(ck, optimizerFile), raw[:len(raw)/2], 0o644)

	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"existing run", fakeOptions(used), "already holds a run"},
		{"out under a file", fakeOptions(filepath.Join(file, "run")), "is not a directory"},
		{"resume nothing", func() Options { o := fakeOptions(t.TempDir()); o.Resume = true; return o }(), "no checkpoint"},
		{"resume corrupt", func() Options { o := fakeOptions(corrupt); o.Resume = true; return o }(), "optimizer.safetensors is corrupt or truncated"},
		{"init corrupt", func() Options { o := fakeOptions(t.TempDir()); o.InitFrom = ck; return o }(), "corrupt or truncated"},
		{"init missing", func() Options { o := fakeOptions(t.TempDir()); o.InitFrom = "/nonexistent/model"; return o }(), "does not exist"},
	} {
		_, err := Run(context.Background(), cfg, tc.o)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want an InputError containing %q", tc.name, err, tc.want)
		}
	}
}

func TestFailedCheckpointWriteLeavesNoDirectory(t *testing.T) {
	cfg := fakeConfig()
	cfg.Run.MaxSteps, cfg.Run.CheckpointEvery = 6, 3
	out := t.TempDir()
	defer func() { rename = os.Rename }()
	calls := 0
	rename = func(a, b string) error {
		if calls++; calls == 2 {
			return errors.New("disk full")
		}
		return os.Rename(a, b)
	}
	if _, err := Run(context.Background(), cfg, fakeOptions(out)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want the rename failure", err)
	}
	es, _ := os.ReadDir(filepath.Join(out, checkpointsDir))
	if len(es) != 1 || es[0].Name() != "step-3" {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("checkpoints dir holds %v, want only step-3", names)
	}
}

func TestVerifyCheckpointDetectsDamage(t *testing.T) {
	cfg := fakeConfig()
	cfg.Run.MaxSteps, cfg.Optim.WarmupSteps = 2, 0
	out := t.TempDir()
	if _, err := Run(context.Background(), cfg, fakeOptions(out)); err != nil {
		t.Fatal(err)
	}
	ck := stepDir(filepath.Join(out, checkpointsDir), 2)
	if err := VerifyCheckpoint(ck); err != nil {
		t.Fatalf("fresh checkpoint does not verify: %v", err)
	}
	p := filepath.Join(ck, "model.safetensors")
	raw := fileBytes(t, p)
	raw[len(raw)-1] ^= 1
	os.WriteFile(p, raw, 0o644)
	if err := VerifyCheckpoint(ck); err == nil || !strings.Contains(err.Error(), "model.safetensors is corrupt") {
		t.Errorf("flipped bit: %v", err)
	}
	os.Remove(p)
	if err := VerifyCheckpoint(ck); err == nil || !strings.Contains(err.Error(), "model.safetensors is missing") {
		t.Errorf("missing file: %v", err)
	}
	os.Remove(filepath.Join(ck, manifestFile))
	if err := VerifyCheckpoint(ck); err == nil || !strings.Contains(err.Error(), "no manifest.json") {
		t.Errorf("missing manifest: %v", err)
	}
}

// A signal between the micro-batches of a long accumulation abandons the
// update at once: the run checkpoints the last whole step and the resumed
// run equals the uninterrupted one.
func TestInterruptBetweenMicroBatches(t *testing.T) {
	cfg := fakeConfig()
	cfg.Optim.GradAccum = 8
	calls := 0
	ref, out, s, err := interrupted(t, cfg, func(o *Options, cancel context.CancelFunc) {
		o.Backend = fakeBackend{hook: func(m *fakeModel) {
			m.onStep = func(k int) {
				calls = k
				if k == 4*8+3 { // the third micro-batch of update 5
					cancel()
				}
			}
		}}
	})
	if !errors.Is(err, ErrInterrupted) || s.Steps != 4 || calls != 4*8+3 {
		t.Fatalf("interrupted run: steps %d after %d micro-batches, err %v; want 4 after 35, ErrInterrupted", s.Steps, calls, err)
	}
	if err := VerifyCheckpoint(stepDir(filepath.Join(out, checkpointsDir), 4)); err != nil {
		t.Fatalf("no checkpoint of the last whole step: %v", err)
	}
	resumeAndCompare(t, cfg, out, ref)
}

// resumeAndCompare resumes the run in out to its end and compares its metrics
// and final checkpoint with the uninterrupted run in ref.
func resumeAndCompare(t *testing.T, cfg Config, out, ref string) {
	t.Helper()
	rc, err := ResumeConfig(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := fakeOptions(out)
	o.Resume = true
	if _, err := Run(context.Background(), rc, o); err != nil {
		t.Fatal(err)
	}
	sameTrajectory(t, readMetrics(t, out), readMetrics(t, ref))
	final := func(dir string) string { return stepDir(filepath.Join(dir, checkpointsDir), cfg.Run.MaxSteps) }
	for _, f := range []string{"model.safetensors", optimizerFile} {
		if !bytes.Equal(fileBytes(t, filepath.Join(final(out), f)), fileBytes(t, filepath.Join(final(ref), f))) {
			t.Errorf("%s after interrupt+resume differs from the uninterrupted run", f)
		}
	}
	if sum, err := ReadSummary(out); err != nil || !sum.Finished || sum.FinalValStep != cfg.Run.MaxSteps {
		t.Errorf("summary after resuming: %+v, %v", sum, err)
	}
}

// nextHook is a Source that calls hook before each Next.
type nextHook struct {
	data.Source
	hook func()
}

func (s nextHook) Next(b *data.Batch) error {
	s.hook()
	return s.Source.Next(b)
}

// A signal during a long evaluation (here the final one) stops it between
// batches: the step's checkpoint keeps its metric line pending, the summary
// is not final, and the resumed run evaluates, logs and finishes exactly as
// the uninterrupted one.
func TestInterruptDuringEvaluation(t *testing.T) {
	cfg := fakeConfig()
	cfg.Data.EvalBatches = 1000
	batches := 0
	ref, out, s, err := interrupted(t, cfg, func(o *Options, cancel context.CancelFunc) {
		o.Data = func(c Config) (*Dataset, error) {
			ds, err := fakeData(c)
			if err == nil {
				ds.Valid = nextHook{ds.Valid, func() {
					if batches++; batches == 1000+3 { // third batch of the final (second) evaluation
						cancel()
					}
				}}
			}
			return ds, err
		}
	})
	if !errors.Is(err, ErrInterrupted) || s.Steps != cfg.Run.MaxSteps || batches != 1000+3 {
		t.Fatalf("interrupted run: steps %d after %d evaluation batches, err %v; want %d after 1003, ErrInterrupted", s.Steps, batches, err, cfg.Run.MaxSteps)
	}
	st, err := readState(stepDir(filepath.Join(out, checkpointsDir), cfg.Run.MaxSteps))
	if err != nil || st.Pending == nil || st.Pending.Step != cfg.Run.MaxSteps {
		t.Fatalf("final checkpoint: pending metric %+v, %v", st.Pending, err)
	}
	if sum, err := ReadSummary(out); err != nil || sum.Finished {
		t.Errorf("summary of a run stopped in its final evaluation says finished: %+v, %v", sum, err)
	}
	if ms := readMetrics(t, out); ms[len(ms)-1].Step == cfg.Run.MaxSteps {
		t.Error("the final step's line was written before its evaluation")
	}
	resumeAndCompare(t, cfg, out, ref)
}

// tokens_per_s counts the time of training steps only: a line after an
// evaluation that takes 25 times as long as the 4 steps of the line shows the
// rate of the steps. (Steps sleep 10 ms: a line is refused below a quarter of
// that rate; with the evaluation counted it would be a 26th.)
func TestTokensPerSecondCountsSteps(t *testing.T) {
	cfg := fakeConfig()
	cfg.Data.EvalBatches = 4
	cfg.Run.MaxSteps, cfg.Run.EvalEvery, cfg.Run.CheckpointEvery, cfg.Run.LogEvery = 12, 4, 4, 4
	o := fakeOptions(t.TempDir())
	o.Backend = fakeBackend{hook: func(m *fakeModel) { m.onStep = func(int) { time.Sleep(10 * time.Millisecond) } }}
	o.Data = func(c Config) (*Dataset, error) {
		ds, err := fakeData(c)
		if err == nil {
			ds.Valid = nextHook{ds.Valid, func() { time.Sleep(250 * time.Millisecond) }}
		}
		return ds, err
	}
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Fatal(err)
	}
	perStep := float64(cfg.Data.BatchSize * cfg.Data.SeqLen)
	for _, m := range readMetrics(t, o.Out) {
		if !(m.TokensPerS >= perStep/0.010/4) {
			t.Errorf("step %d: tokens_per_s %.0f, want at least %.0f: the line counts more than training steps", m.Step, m.TokensPerS, perStep/0.010/4)
		}
	}
}
