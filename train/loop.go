package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/internal/mpi"
	"github.com/mambago/mamba/internal/sysmem"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/optim"
)

// Options are the parts of a run that are not in its config.
type Options struct {
	Out      string // run directory: metrics.jsonl, metrics.csv, checkpoints/
	Resume   bool   // continue from the newest valid checkpoint in Out
	InitFrom string // start from these weights: a checkpoint, a run directory or a transformers Mamba or Llama directory
	Force    bool   // write into an Out that holds other files than a run's
	Backend  Backend
	Data     func(Config) (*Dataset, error) // nil = OpenData
	Stdout   io.Writer                      // config line, progress, summary; nil = discard
	Terminal bool                           // draw a progress bar instead of log lines
	Notes    []string                       // lines printed after the config line (e.g. the BLAS in use)
	Comm     *mpi.World                     // the MPI job this process is a rank of (distributed.go); nil = train alone
}

// InputError marks a failure caused by the run's input (config, data, checkpoint,
// output directory) rather than by training itself.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// ErrInterrupted is returned when the context is cancelled (SIGINT, SIGTERM): the
// step in progress was finished and checkpointed.
var ErrInterrupted = errors.New("interrupted")

// Summary is the outcome of a run.
type Summary struct {
	Steps, Skipped    int
	Tokens            int64
	ElapsedS          float64
	Loss              float64 // last training loss
	Eval              Eval    // last evaluation
	Checkpoint        string  // last checkpoint written
	Params, Trainable int
	// Data-parallel runs: ranks, sequences per step over all ranks, and mean
	// seconds per step the training waited for communication.
	Ranks, GlobalBatch int
	CommS              float64
}

type runner struct {
	cfg     Config
	o       Options
	out     string
	dir     *runDir // the lock on out, and what the set-up created there
	model   Model
	stepper Stepper
	ds      *Dataset
	opt     *optim.AdamW
	acc     *optim.Accumulator // nil without gradient accumulation (or on the GPU)
	gpu     *onGPU             // nil on the CPU
	dist    *dist              // nil unless data-parallel
	log     *metricsLog
	prog    progress
	st      trainerState

	eval    *evaluator
	evals   evalRecord // last and best evaluation, for summary.json
	batch   data.Batch
	summary Summary
	saved   int // step of the checkpoint on disk that holds the current state; -1 = none
}

// Run trains a model as cfg describes, writing metrics and checkpoints into o.Out.
// It returns ErrInterrupted (with the summary so far) when ctx is cancelled, an
// *InputError when the config, data, checkpoint or output directory is unusable.
func Run(ctx context.Context, cfg Config, o Options) (*Summary, error) {
	if o.Comm != nil {
		return runRank(ctx, cfg, o)
	}
	r, err := setup(cfg, o)
	if err != nil {
		return nil, &InputError{err}
	}
	defer r.close()
	return r.loop(ctx)
}

func setup(cfg Config, o Options) (_ *runner, err error) {
	if o.Backend == nil {
		o.Backend = Layers{}
	}
	if o.Data == nil {
		o.Data = OpenData
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Out == "" {
		return nil, errors.New("no output directory given (--out)")
	}
	if err := checkOut(o.Out); err != nil {
		return nil, err
	}
	if o.Resume && o.InitFrom != "" {
		return nil, errors.New("--resume and --init-from exclude each other: a resumed run keeps its own weights")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, o: o, out: o.Out, saved: -1}
	if r.dir, err = claimDir(o.Out, o.Force); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.dir.undo()
			r.close()
		}
	}()
	root := filepath.Join(o.Out, checkpointsDir)
	var ckpt string
	if o.Resume {
		dir, skipped, err := LatestCheckpoint(o.Out)
		if err != nil {
			return nil, err
		}
		for _, e := range skipped {
			r.o.Notes = append(slices.Clip(r.o.Notes), fmt.Sprintf("warning: skipping %v", e))
		}
		ckpt = dir
		if r.st, err = readState(dir); err != nil {
			return nil, err
		}
		r.saved = r.st.Step
		prev, err := ParseConfig(r.st.Config, nil)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: stored config: %v", dir, err)
		}
		if cfg.Run.MaxSteps < r.st.Step {
			return nil, fmt.Errorf("run.max_steps %d is below the step %d of checkpoint %s", cfg.Run.MaxSteps, r.st.Step, dir)
		}
		if prev.Model != cfg.Model || !sameStream(prev.Data, cfg.Data) {
			return nil, fmt.Errorf("the model or data section differs from checkpoint %s: a resumed run keeps them", dir)
		}
		if err := checkKind(Kind{r.st.Modality, r.st.Tokenizer}, "checkpoint "+dir+" was trained on", cfg.Data); err != nil {
			return nil, err
		}
	} else if steps, _ := checkpointSteps(root); len(steps) > 0 {
		return nil, fmt.Errorf("%s already holds a run (newest checkpoint step-%d): pass --resume to continue it or choose another --out", o.Out, steps[0])
	}
	k, who := declared(cfg.Data)
	if err := checkKind(k, who, cfg.Data); err != nil {
		return nil, err
	}

	switch {
	case ckpt != "":
		if err = r.checkMemory(cfg.Model); err == nil {
			r.model, err = o.Backend.LoadModel(ckpt)
		}
	case o.InitFrom != "":
		var dir string
		if dir, err = ModelDir(o.InitFrom); err == nil {
			var k Kind
			if k, err = TrainedOn(dir); err == nil {
				err = checkKind(k, "the --init-from checkpoint "+dir+" was trained on", cfg.Data)
			}
			var mc layers.Config
			if err == nil {
				mc, err = o.Backend.ReadConfig(dir)
			}
			if err == nil {
				err = r.checkMemory(mc)
			}
			if err != nil {
				return nil, err
			}
			if r.model, err = o.Backend.LoadModel(dir); err == nil {
				r.cfg.Model = r.model.Config()
				r.o.Notes = append(slices.Clip(r.o.Notes), "init-from "+dir+": the model section is the loaded model's")
				err = r.cfg.Validate()
			}
		}
	default:
		if err = r.checkMemory(cfg.Model); err == nil {
			r.model, err = o.Backend.NewModel(cfg.Model, cfg.Run.Seed)
		}
	}
	if err != nil {
		return nil, err
	}

	trainable, err := r.trainable()
	if err != nil {
		return nil, err
	}
	if r.opt, err = optim.New(trainable, r.cfg.Optim); err != nil {
		return nil, err
	}
	if r.cfg.Optim.GradAccum > 1 {
		r.acc = optim.NewAccumulator(trainable)
	}
	if ckpt != "" {
		names := make([]string, len(trainable))
		for i, p := range trainable {
			names[i] = p.Name
		}
		s, err := readOptimizer(ckpt, names)
		if err != nil {
			return nil, err
		}
		if err := r.opt.Restore(s); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %v", ckpt, err)
		}
	}
	if r.stepper, r.gpu, err = compileOn(r.cfg, r.model); err != nil {
		return nil, err
	}
	if r.gpu != nil {
		if err := r.startGPU(); err != nil {
			return nil, err
		}
		r.o.Notes = append(slices.Clip(r.o.Notes), r.gpu.note())
	}
	if r.ds, err = o.Data(r.cfg); err != nil {
		return nil, err
	}
	r.st.Modality, r.st.Tokenizer = r.ds.Kind.Modality, r.ds.Kind.Tokenizer
	if ckpt != "" {
		if err := r.ds.Train.Restore(r.st.Cursor); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %v", ckpt, err)
		}
		// Newer step directories failed verification (a write cut short); the run
		// replays those steps and rewrites them, so none may outlive this point.
		steps, _ := checkpointSteps(root)
		for _, s := range steps {
			if s > r.st.Step {
				if err := os.RemoveAll(stepDir(root, s)); err != nil {
					return nil, err
				}
			}
		}
	}
	r.eval = newEvaluator(r.cfg, r.model, r.stepper, r.ds)
	_, before := os.Lstat(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create output directory: %v", err)
	}
	r.dir.made(root, before)
	if r.log, err = openMetrics(o.Out, ckpt != "", r.st.Step, r.dir); err != nil {
		return nil, fmt.Errorf("cannot write to output directory: %v", err)
	}
	if r.evals, err = readEvals(o.Out); err != nil {
		return nil, fmt.Errorf("cannot read the metrics of %s: %v", o.Out, err)
	}
	r.prog = progress{w: o.Stdout, terminal: o.Terminal, total: r.cfg.Run.MaxSteps}
	r.st.Config = r.cfg.JSON()
	for _, p := range trainable {
		r.summary.Trainable += len(p.Value)
	}
	for _, p := range r.model.Params() {
		r.summary.Params += len(p.Value)
	}
	return r, nil
}

// checkMemory refuses a model of config mc whose training at the run's batch
// shape needs more memory than run.max_memory, or than is available: the
// estimate (layers.Config.TrainingBytes, plus the accumulated gradient) is
// made before anything is allocated.
func (r *runner) checkMemory(mc layers.Config) error {
	if err := mc.Validate(); err != nil {
		return err
	}
	d := r.cfg.Data
	need := mc.TrainingBytes(d.BatchSize, d.SeqLen)
	if r.cfg.Run.Device == DeviceCUDA {
		need = mc.TrainingBytes(0, 0) // the host keeps the parameters and optimizer state; the activations live on the GPU
	}
	if r.cfg.Optim.GradAccum > 1 {
		need += 4 * float64(mc.NumParams())
	}
	limit, _ := r.cfg.Run.memoryLimit() // validated
	if err := sysmem.Check(need, limit); err != nil {
		return fmt.Errorf("the model (%d parameters), its optimizer and the activations of %d × %d tokens %v: make the model, data.batch_size or data.seq_len smaller, or set run.max_memory (--max-memory)",
			mc.NumParams(), d.BatchSize, d.SeqLen, err)
	}
	return nil
}

// checkOut fails early, before anything is created, when out cannot become a
// writable directory.
func checkOut(out string) error {
	for p := out; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		switch {
		case err == nil && !st.IsDir():
			return fmt.Errorf("--out %s: %s is not a directory", out, p)
		case err == nil && unix.Access(p, unix.W_OK) != nil:
			return fmt.Errorf("--out %s: %s is not writable", out, p)
		case err == nil || filepath.Dir(p) == p:
			return nil
		}
	}
}

// sameStream reports whether two data sections produce the same training stream
// (evaluation, verification and the data's declared kind may change on resume).
func sameStream(a, b DataConfig) bool {
	a.EvalBatches, a.Valid, a.Test, a.Verify, a.Modality, a.Tokenizer = b.EvalBatches, b.Valid, b.Test, b.Verify, b.Modality, b.Tokenizer
	return a == b
}

// ModelDir resolves a directory of weights: a run directory means its newest valid
// checkpoint; a checkpoint directory (any of our checkpoint files present, so one
// whose manifest was deleted too) is verified; anything else is taken to be a
// transformers-style model directory.
func ModelDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, checkpointsDir)); err == nil {
		d, _, err := LatestCheckpoint(dir)
		return d, err
	}
	for _, ours := range []string{manifestFile, stateFile, optimizerFile} {
		if _, err := os.Lstat(filepath.Join(dir, ours)); err == nil {
			return dir, VerifyCheckpoint(dir)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("%s: directory does not exist", dir)
	}
	return dir, nil
}

// matchName reports whether a parameter name matches a freeze pattern.
func matchName(pattern, name string) (bool, error) { return path.Match(pattern, name) }

// trainable returns the optimizer's view of the parameters that no run.freeze
// pattern matches. A pattern that matches nothing is an error (a likely typo).
func (r *runner) trainable() ([]optim.Param, error) {
	used := make([]bool, len(r.cfg.Run.Freeze))
	var ps []optim.Param
	for _, p := range r.model.Params() {
		frozen := false
		for i, pat := range r.cfg.Run.Freeze {
			if ok, _ := matchName(pat, p.Name); ok {
				frozen, used[i] = true, true
			}
		}
		if !frozen {
			ps = append(ps, optim.Param{Name: p.Name, Value: p.Value, Grad: p.Grad, NoDecay: p.NoDecay})
		}
	}
	for i, u := range used {
		if !u {
			return nil, fmt.Errorf("run.freeze pattern %q matches no parameter (names look like %s)", r.cfg.Run.Freeze[i], r.model.Params()[len(r.model.Params())/2].Name)
		}
	}
	if len(ps) == 0 {
		return nil, errors.New("run.freeze leaves no parameter to train")
	}
	return ps, nil
}

func (r *runner) close() {
	r.gpu.close()
	if r.ds != nil {
		r.ds.Close()
	}
	if r.log != nil {
		r.log.close()
	}
	r.dir.release()
}

func (r *runner) loop(ctx context.Context) (*Summary, error) {
	c := r.cfg.Run
	fmt.Fprintf(r.o.Stdout, "config %s\n", r.st.Config)
	for _, n := range r.o.Notes {
		fmt.Fprintln(r.o.Stdout, n)
	}
	fmt.Fprintf(r.o.Stdout, "model: %d parameters (%d trained); %d tokens per step; out %s\n",
		r.summary.Params, r.summary.Trainable, r.tokensPerStep(), r.out)
	if r.st.Step > 0 {
		fmt.Fprintf(r.o.Stdout, "resumed at step %d\n", r.st.Step)
	}
	if ctx.Err() != nil {
		return r.interrupted("during start-up")
	}
	if m := r.st.Pending; m != nil {
		// Interrupted in the evaluation of this step: finish it first.
		if ok, err := r.evaluate(ctx, m); err != nil || !ok {
			if err != nil {
				return r.finish(), err
			}
			return r.interrupted(fmt.Sprintf("in the evaluation of step %d", m.Step))
		}
		if err := r.log.write(*m); err != nil {
			return r.finish(), err
		}
		r.st.Pending = nil
	}
	start, startStep := time.Now(), r.st.Step
	base := r.st.ElapsedS
	// tokens_per_s counts the time spent in training steps only: not the
	// start-up, the evaluations or the checkpoints.
	var stepTime time.Duration
	lastTokens := r.st.Tokens
	for r.st.Step < c.MaxSteps {
		t0 := time.Now()
		loss, norm, lr, err := r.trainStep(ctx)
		if errors.Is(err, errStopped) {
			return r.interrupted(fmt.Sprintf("during step %d", r.st.Step+1))
		}
		if err != nil {
			return r.finish(), err
		}
		step := r.st.Step
		now := time.Now()
		stepTime += now.Sub(t0)
		r.st.ElapsedS = base + now.Sub(start).Seconds()
		tokPerS := 0.0
		if dt := stepTime.Seconds(); dt > 0 {
			tokPerS = float64(r.st.Tokens-lastTokens) / dt
		}
		eta := time.Duration(float64(now.Sub(start)) / float64(step-startStep) * float64(c.MaxSteps-step))
		m := Metric{Step: step, Loss: finite(loss), LR: lr, GradNorm: finite(norm), TokensPerS: tokPerS,
			ElapsedS: r.st.ElapsedS, Skipped: r.st.Skipped}
		logged := step%c.LogEvery == 0 || step == c.MaxSteps
		if (c.EvalEvery > 0 && step%c.EvalEvery == 0) || step == c.MaxSteps {
			ok, err := r.evaluate(ctx, &m)
			if err != nil {
				return r.finish(), err
			}
			if !ok {
				// The step is done; its line waits in the checkpoint for the
				// evaluation, which a resumed run runs first.
				r.st.Pending = &m
				r.saved = -1
				return r.interrupted(fmt.Sprintf("in the evaluation of step %d", step))
			}
			logged = true
		}
		r.dist.log(&m, logged)
		if logged {
			if err := r.log.write(m); err != nil {
				return r.finish(), err
			}
			stepTime, lastTokens = 0, r.st.Tokens
		}
		r.prog.step(step, loss, tokPerS, eta, logged, m)
		if r.st.Consecutive >= c.MaxNonFinite {
			return r.finish(), fmt.Errorf("stopping: %d steps in a row had a non-finite loss or gradient (last good checkpoint kept in %s)", r.st.Consecutive, filepath.Join(r.out, checkpointsDir))
		}
		if (c.CheckpointEvery > 0 && step%c.CheckpointEvery == 0) || step == c.MaxSteps || ctx.Err() != nil {
			if err := r.checkpoint(); err != nil {
				return r.finish(), err
			}
		}
		if ctx.Err() != nil && step < c.MaxSteps {
			return r.interrupted(fmt.Sprintf("at step %d", step))
		}
	}
	// Also when resuming a run killed between its final checkpoint and summary.
	if err := r.writeSummary(); err != nil {
		return r.finish(), err
	}
	s := r.finish()
	s.Table(r.o.Stdout)
	return s, nil
}

// errStopped is a step or an evaluation abandoned between micro-batches for
// a signal.
var errStopped = errors.New("stopped by a signal")

// interrupted ends a run stopped by a signal (when, e.g. "at step 5"): it
// writes a checkpoint of the current state unless the newest one on disk is
// that state, and returns ErrInterrupted.
func (r *runner) interrupted(when string) (*Summary, error) {
	if r.st.Step == 0 {
		r.prog.line("interrupted %s, before the first step: nothing to save", when)
		return r.finish(), ErrInterrupted
	}
	if r.saved != r.st.Step {
		if err := r.checkpoint(); err != nil {
			return r.finish(), err
		}
	}
	r.prog.line("interrupted %s; checkpoint %s saved; continue with --resume", when, stepDir(filepath.Join(r.out, checkpointsDir), r.st.Step))
	return r.finish(), ErrInterrupted
}

// evaluate runs the evaluation of step m.Step into m; false when a signal
// stopped it between batches.
func (r *runner) evaluate(ctx context.Context, m *Metric) (bool, error) {
	e, err := r.eval.run(ctx)
	switch {
	case errors.Is(err, errStopped):
		return false, nil
	case err != nil:
		return false, err
	}
	m.Eval = e
	r.summary.Eval = e
	r.evals.add(m.Step, e)
	r.prog.line("eval step %d: %s", m.Step, evalString(e))
	return true, nil
}

func (r *runner) tokensPerStep() int {
	d := r.cfg.Data
	return d.BatchSize * d.SeqLen * r.cfg.Optim.GradAccum * r.dist.ranks()
}

// trainStep runs the micro-batches of one update, then clips and steps, or skips
// the update when the loss or the gradient is not finite. A signal (ctx) seen
// between micro-batches abandons the update: the training stream goes back to
// where the step began, and errStopped is returned.
func (r *runner) trainStep(ctx context.Context) (loss, norm, lr float64, err error) {
	k := r.cfg.Optim.GradAccum
	begin := r.ds.Train.Cursor()
	if err := r.beginUpdate(); err != nil {
		return 0, 0, 0, err
	}
	for j := range k {
		if j > 0 && ctx.Err() != nil {
			if err := r.ds.Train.Restore(begin); err != nil {
				return 0, 0, 0, fmt.Errorf("training data: %w", err)
			}
			return 0, 0, 0, errStopped
		}
		if err := r.ds.Train.Next(&r.batch); err != nil {
			return 0, 0, 0, fmt.Errorf("training data: %w", err)
		}
		l, err := r.stepper.Step(r.batch.Inputs, r.batch.Targets, r.batch.Resets)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("step %d: %w", r.st.Step+1, err)
		}
		loss += l
		if r.acc != nil {
			r.acc.Add()
		}
		r.dist.add(l)
	}
	loss /= float64(k)
	if r.acc != nil {
		r.acc.Mean()
	}
	if loss, err = r.dist.reduce(loss); err != nil {
		return 0, 0, 0, err
	}
	r.st.Tokens += int64(r.tokensPerStep())
	if norm, err = r.gradNorm(); err != nil {
		return 0, 0, 0, fmt.Errorf("step %d: %w", r.st.Step+1, err)
	}
	lr = r.cfg.Optim.LRAt(r.st.Step, r.cfg.Run.MaxSteps)
	r.st.Step++
	if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
		r.st.Skipped++
		r.st.Consecutive++
		r.prog.line("warning: step %d skipped: loss %v, gradient norm %v (%d in a row)", r.st.Step, loss, norm, r.st.Consecutive)
		return loss, norm, lr, nil
	}
	r.st.Consecutive = 0
	if err := r.update(lr, norm); err != nil {
		return 0, 0, 0, fmt.Errorf("step %d: %w", r.st.Step, err)
	}
	r.summary.Loss = loss
	return loss, norm, lr, nil
}

// checkpoint writes a checkpoint of the current state (rank 0 of a
// data-parallel run; every rank calls it).
func (r *runner) checkpoint() error {
	if err := r.pull(); err != nil {
		return err
	}
	if err := r.dist.onRank0(r.writeCheckpoint); err != nil {
		return err
	}
	r.saved = r.st.Step
	return nil
}

func (r *runner) writeCheckpoint() error {
	r.st.Cursor = r.ds.Train.Cursor()
	dir, err := saveCheckpoint(filepath.Join(r.out, checkpointsDir), r.model, r.opt, r.st)
	if err != nil {
		return err
	}
	r.summary.Checkpoint = dir
	if err := pruneCheckpoints(filepath.Join(r.out, checkpointsDir), r.cfg.Run.KeepCheckpoints); err != nil {
		return err
	}
	return r.writeSummary()
}

func (r *runner) finish() *Summary {
	r.prog.end()
	s := r.summary
	s.Steps, s.Skipped, s.Tokens, s.ElapsedS = r.st.Step, r.st.Skipped, r.st.Tokens, r.st.ElapsedS
	return &s
}
