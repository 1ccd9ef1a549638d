package sweep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/train"
)

// Files of a sweep's run directory besides the run's own.
const (
	RunConfigFile = "run-config.json" // the resolved run config the run was started with
	LogFile       = "train.log"       // the run's stdout and stderr, every attempt appended
	lockFile      = ".sweep.lock"
)

// Options are the parts of a sweep run that are not in its config.
type Options struct {
	Out      string    // the sweep directory: one run directory per point, and the reports
	Parallel int       // runs at once, each with GOMAXPROCS = NumCPU/Parallel; 0 = 1
	Exe      string    // the train binary run for each point (os.Executable())
	Stdout   io.Writer // progress; nil = discard
	// Progress is the interval of the progress line between run starts and ends;
	// 0 = 30 s.
	Progress time.Duration
}

// InputError marks a sweep that cannot start or go on because of its input (its
// config, a run directory it does not own, a run whose input the trainer refused).
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// ErrInterrupted is returned when the context was cancelled: the running runs were
// asked to checkpoint and stop, and did.
var ErrInterrupted = errors.New("interrupted")

type state int

const (
	fresh state = iota
	resume
	done
)

// Run trains every point of plan that is not finished yet, resuming those that
// were interrupted, by running `train` in a child process per point. A finished
// run is one whose summary.json is final and whose config hash is the point's;
// it is never run again. The LR search's runs go first; the points waiting for
// them are resolved (Plan.Resolve) and run after. Runs that fail are reported in
// the error after the others have run; a run whose input the trainer refuses stops
// the sweep.
func Run(ctx context.Context, plan *Plan, o Options) error {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Parallel <= 0 {
		o.Parallel = 1
	}
	if o.Progress == 0 {
		o.Progress = 30 * time.Second
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return &InputError{fmt.Errorf("--out %s: %v", o.Out, errors.Unwrap(err))}
	}
	lock, err := lockDir(o.Out)
	if err != nil {
		return &InputError{err}
	}
	defer lock.Close()

	n := len(plan.Points)
	s := &sweeper{o: o, plan: plan, lock: lock, states: make([]state, n), flops: make([]float64, n), running: map[int]bool{}}
	inspected := make([]bool, n)
	// next resolves what the finished search runs allow and inspects the points that
	// became known; it returns those left to run.
	next := func() ([]int, error) {
		if err := plan.Resolve(o.Out); err != nil {
			return nil, err
		}
		var todo []int
		for i, pt := range plan.Points {
			if !pt.Resolved() || inspected[i] {
				continue
			}
			inspected[i] = true
			if s.states[i], s.flops[i], err = inspect(filepath.Join(o.Out, pt.Name), pt); err != nil {
				return nil, err
			}
			if s.states[i] == done {
				s.finished++
			} else {
				todo = append(todo, i)
			}
		}
		return todo, nil
	}
	todo, err := next()
	if err != nil {
		return &InputError{err}
	}
	procs := max(1, runtime.NumCPU()/o.Parallel)
	s.printf("sweep %s: %d runs (%d finished, %d to run), %.3g FLOPs planned; %d at once, GOMAXPROCS %d each",
		o.Out, n, s.finished, n-s.finished, plan.FLOPs(), o.Parallel, procs)
	for _, d := range plan.Dropped {
		s.printf("dropped %s", d)
	}
	s.start = time.Now()
	s.startDone = s.doneFLOPs()
	stopTicker := make(chan struct{})
	go s.ticker(stopTicker)
	defer close(stopTicker)
	for len(todo) > 0 {
		if err := s.run(ctx, todo, procs); err != nil {
			return err
		}
		if todo, err = next(); err != nil {
			return &InputError{err}
		}
	}
	if len(s.failed) > 0 {
		return fmt.Errorf("%d of %d runs failed (see train.log in their directories): %s", len(s.failed), n, strings.Join(s.failed, ", "))
	}
	s.printf("sweep finished: %d runs in %s", n, time.Since(s.start).Round(time.Second))
	return nil
}

// inspect reports what is left to do for pt in dir, and the compute already done.
func inspect(dir string, pt Point) (state, float64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, RunConfigFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if es, _ := os.ReadDir(dir); len(es) > 0 {
			return 0, 0, fmt.Errorf("%s is not empty and has no %s: it was not made by a sweep; move it away or choose another --out", dir, RunConfigFile)
		}
		return fresh, 0, nil
	case err != nil:
		return 0, 0, err
	case !bytes.Equal(bytes.TrimSpace(raw), pt.JSON):
		return 0, 0, fmt.Errorf("%s was made by a different sweep config (its %s differs from this sweep's run): restore that config, or move the directory away", dir, RunConfigFile)
	}
	sum, serr := train.ReadSummary(dir)
	if serr == nil && sum.Finished && sum.ConfigSHA256 == configHash(pt.JSON) {
		return done, pt.FLOPs(), nil
	}
	if _, _, err := train.LatestCheckpoint(dir); err == nil {
		var flops float64
		if serr == nil {
			flops = sum.FLOPs
		}
		return resume, flops, nil
	}
	return fresh, 0, nil
}

type sweeper struct {
	o      Options
	plan   *Plan
	lock   *os.File
	states []state
	flops  []float64 // compute done per point, as of its last report

	mu        sync.Mutex
	running   map[int]bool
	finished  int
	failed    []string
	inputErr  error
	startDone float64
	start     time.Time
}

// run runs the points todo, o.Parallel at a time, and returns an error when the
// sweep must stop: a run's input was refused, or ctx was cancelled.
func (s *sweeper) run(ctx context.Context, todo []int, procs int) error {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(s.o.Parallel, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s.runPoint(ctx, i, procs)
			}
		}()
	}
	for _, i := range todo {
		s.mu.Lock()
		stop := s.inputErr != nil
		s.mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	switch {
	case s.inputErr != nil:
		return &InputError{s.inputErr}
	case ctx.Err() != nil:
		s.printf("sweep interrupted: %d/%d runs finished; run the same command again to continue", s.finished, len(s.plan.Points))
		return ErrInterrupted
	}
	return nil
}

// runPoint runs one point to its end in a child process.
func (s *sweeper) runPoint(ctx context.Context, i, procs int) {
	pt := s.plan.Points[i]
	dir := filepath.Join(s.o.Out, pt.Name)
	args := []string{"train", "--resume", "--out", dir}
	what := "resume"
	if s.states[i] == fresh {
		if err := createRunDir(dir, pt.JSON); err != nil {
			s.fail(i, &InputError{err})
			return
		}
		// --force: the run directory holds the sweep's files (run-config.json, train.log).
		args, what = []string{"train", "--config", filepath.Join(dir, RunConfigFile), "--out", dir, "--force"}, "start"
	}
	s.mu.Lock()
	s.running[i] = true
	s.printLocked("%s %s: %s, %d steps × %d tokens, lr %.3g, %d (%d non-embedding) params",
		what, pt.Name, s.countLocked(), pt.Steps, pt.TokensPerStep, pt.LR, pt.Params, pt.NonEmbedding)
	s.mu.Unlock()

	code, stderr, err := s.child(ctx, dir, args, procs)

	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, i)
	switch {
	case err != nil:
		s.inputErr = fmt.Errorf("run %s: %v", pt.Name, err)
	case code == 0:
		sum, err := train.ReadSummary(dir)
		if err != nil || !sum.Finished {
			s.failed = append(s.failed, pt.Name)
			s.printLocked("failed %s: it exited without a final summary.json", pt.Name)
			return
		}
		s.flops[i] = pt.FLOPs()
		s.finished++
		s.printLocked("done %s: val loss %s in %s; %s", pt.Name, fmtLoss(sum.FinalValLoss), time.Duration(sum.WallS*float64(time.Second)).Round(time.Second), s.countLocked())
	case code == 2:
		s.inputErr = fmt.Errorf("run %s: %s", pt.Name, stderr)
	case ctx.Err() != nil:
		// Interrupted with the sweep: its checkpoint is written; the next sweep resumes it.
	default:
		s.failed = append(s.failed, pt.Name)
		s.printLocked("failed %s (exit %d): %s", pt.Name, code, stderr)
	}
}

// createRunDir makes a fresh run directory holding run-config.json, atomically: it is
// built under a temporary name and renamed, so a sweep killed at any moment leaves either
// no directory or one that the next sweep recognises as its own. A directory that already
// holds this run's config (a run killed before its first checkpoint) is kept.
func createRunDir(dir string, config []byte) error {
	if raw, err := os.ReadFile(filepath.Join(dir, RunConfigFile)); err == nil && bytes.Equal(bytes.TrimSpace(raw), config) {
		return nil
	}
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, RunConfigFile), append(config, '\n')); err != nil {
		return err
	}
	// An empty directory (inspect found it empty) is replaced; os.Remove refuses one that
	// is not empty.
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	atomicfile.SyncDir(filepath.Dir(dir))
	return nil
}

func (s *sweeper) fail(i int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inputErr = fmt.Errorf("run %s: %v", s.plan.Points[i].Name, err)
}

// child runs the train binary and returns its exit status and the last line of its
// stderr. A cancelled ctx sends it SIGTERM: it finishes its step, checkpoints and exits.
func (s *sweeper) child(ctx context.Context, dir string, args []string, procs int) (int, string, error) {
	log, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, "", err
	}
	defer log.Close()
	fmt.Fprintf(log, "# %s %s\n", time.Now().Format(time.RFC3339), strings.Join(args, " "))
	var stderr bytes.Buffer
	// The child must die with the sweep (see childAttr), which ties it to the thread
	// that started it: keep that thread until the child has ended.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(s.o.Exe, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	cmd.Stdout, cmd.Stderr = log, io.MultiWriter(log, &stderr)
	cmd.ExtraFiles = []*os.File{s.lock} // holds the sweep's lock while the child lives
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("cannot start %s: %v", s.o.Exe, err)
	}
	waited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
		case <-waited:
		}
	}()
	err = cmd.Wait()
	close(waited)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, "", err
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	return cmd.ProcessState.ExitCode(), lines[len(lines)-1], nil
}

// ticker prints the progress line every o.Progress until stop is closed.
func (s *sweeper) ticker(stop chan struct{}) {
	t := time.NewTicker(s.o.Progress)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.mu.Lock()
			if len(s.running) > 0 {
				s.printLocked("%s", s.countLocked())
			}
			s.mu.Unlock()
		}
	}
}

// countLocked describes the sweep's progress: runs done, the runs in progress with
// their steps, the share of compute done and the time left at this invocation's
// rate of compute.
func (s *sweeper) countLocked() string {
	var running []string
	for i := range s.plan.Points {
		if s.running[i] {
			pt := s.plan.Points[i]
			step := lastStep(filepath.Join(s.o.Out, pt.Name))
			running = append(running, fmt.Sprintf("%s %d/%d", pt.Name, step, pt.Steps))
			s.flops[i] = max(s.flops[i], float64(step)*float64(pt.TokensPerStep)*pt.FLOPsPerToken)
		}
	}
	total, done := s.plan.FLOPs(), s.doneFLOPs()
	eta := "-"
	if rate := (done - s.startDone) / time.Since(s.start).Seconds(); rate > 0 {
		eta = time.Duration((total - done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	msg := fmt.Sprintf("%d/%d runs done, %.0f%% of FLOPs, eta %s", s.finished, len(s.plan.Points), 100*done/total, eta)
	if len(running) > 0 {
		msg += "; running " + strings.Join(running, ", ")
	}
	return msg
}

func (s *sweeper) doneFLOPs() float64 {
	var d float64
	for _, f := range s.flops {
		d += f
	}
	return d
}

func (s *sweeper) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.printLocked(format, args...)
}

func (s *sweeper) printLocked(format string, args ...any) {
	fmt.Fprintf(s.o.Stdout, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// lastStep reads the step of the last line of a run's metrics.jsonl (0 if none).
func lastStep(dir string) int {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	buf := make([]byte, min(st.Size(), 4096))
	if _, err := f.ReadAt(buf, st.Size()-int64(len(buf))); err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	last := lines[len(lines)-1]
	rest, ok := strings.CutPrefix(last, `{"step":`)
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(rest[:strings.IndexAny(rest+",", ",}")])
	return n
}

func fmtLoss(p *float64) string {
	if p == nil {
		return "none"
	}
	return strconv.FormatFloat(*p, 'f', 4, 64)
}

// lockDir takes the sweep lock of dir, held until the sweep and every run it
// started have exited.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--out %s: %v", dir, errors.Unwrap(err))
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("--out %s is in use by another sweep, or by runs of a killed one that are still ending", dir)
	}
	return f, nil
}

// configHash is the SHA-256 of a resolved config's JSON, as summary.json records it.
func configHash(resolved []byte) string {
	sum := sha256.Sum256(resolved)
	return hex.EncodeToString(sum[:])
}
