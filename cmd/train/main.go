// Command train pretrains, fine-tunes, evaluates and samples Mamba and Transformer++ language
// models (model.arch "mamba" or "transformer").
//
//	go run ./cmd/train                                    # quickstart: selective copying, offline, < 1 min
//	go run ./cmd/train --config configs/text.json --set optim.lr=1e-3 --out runs/text
//	go run ./cmd/train --resume --out runs/text           # continue from the newest valid checkpoint
//	go run ./cmd/train --init-from runs/text --config configs/text.json --set run.freeze='["backbone.embeddings.*"]' --out runs/ft
//	go run ./cmd/train eval --checkpoint runs/text
//	go run ./cmd/train generate --checkpoint runs/text --prompt "The " --tokens 200
//	go run ./cmd/train prepare --modality text --out data/cache/text-bytes --tokenizer bytes
//	go run ./cmd/train bench --config configs/bench.json          # tokens/s, MFU, per-op times, generation
//	go run ./cmd/train sweep --config configs/sweeps/smoke.json --out runs/smoke
//	go run ./cmd/train sweep fit --runs runs/smoke/runs.csv --json
//
// Exit status: 0 success, 1 training failed, 2 bad input (flags, config, data,
// checkpoint, output directory, memory), 130 interrupted (after a final checkpoint).
// These are the built binary's (go build -o train ./cmd/train): go run exits 1
// whenever the program fails.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/mambago/mamba/configs"
	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/mpi"
	"github.com/mambago/mamba/train"
)

func main() {
	os.Exit(endJob(run(os.Args[1:], os.Stdout, os.Stderr)))
}

// usageError is bad command-line input: exit status 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes one command line and returns the exit status. Errors are printed
// as a single line on stderr.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "train"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if err := math32.EnvError(); err != nil { // the environment, like a flag, is input
		fmt.Fprintf(stderr, "train: %s\n", err)
		return 2
	}
	var err error
	if cmd != "train" && cmd != "help" {
		// Only training is data-parallel: one process does the rest.
		if l, ok, _ := mpi.Detect(os.Getenv); ok {
			if l.Rank != 0 {
				return 2 // rank 0 says why
			}
			fmt.Fprintf(stderr, "train %s: runs in one process, but %s started %d: run it without %s (only training is data-parallel)\n", cmd, l.By, l.Size, l.By)
			return 2
		}
	}
	switch cmd {
	case "train":
		err = runTrainRank(args, stdout, stderr)
	case "eval":
		err = runEval(args, stdout)
	case "generate":
		err = runGenerate(args, stdout, stderr)
	case "bench":
		err = runBench(args, stdout)
	case "sweep":
		err = runSweep(args, stdout)
	case "prepare":
		if err = runPrepare(args, stdout, stderr); err != nil {
			err = usageError{err}
		}
	case "help":
		fmt.Fprint(stdout, trainUsage)
		return 0
	default:
		err = usagef("unknown command %q (want train, eval, generate, bench, sweep, prepare or help)", cmd)
	}
	if err == nil || errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	prefix := "train"
	if cmd != "train" {
		prefix += " " + cmd
	}
	if !errors.As(err, new(quietError)) {
		fmt.Fprintf(stderr, "%s: %s\n", prefix, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	var ue usageError
	var ie *train.InputError
	switch {
	case errors.As(err, &ue), errors.As(err, &ie):
		return 2
	case errors.Is(err, train.ErrInterrupted):
		return 130
	}
	return 1
}

const trainUsage = `Train a Mamba or Transformer++ language model (model.arch mamba or transformer).

Usage:
  train [train] [--config FILE] [--set key=value]... [--out DIR] [--resume] [--init-from DIR] [--force] [--max-memory SIZE]
  train eval --checkpoint DIR [--split valid|test] [--set key=value]...
  train generate --checkpoint DIR (--prompt TEXT | --prompt-ids 1,2,3 | --prompt-wav FILE) [--wav FILE] [--tokens N]
  train bench [--config FILE] [--d-model N ...] [--steps N] [--json]   (see: train bench --help)
  train prepare --modality text|dna|audio --out DIR [...]   (see: train prepare --help)
  train sweep --config FILE --out DIR [--parallel K]       (see: train sweep --help)
  train sweep fit --runs FILE.csv [--json]

With no arguments, train runs configs/quickstart.json: a small Mamba learns the
selective-copying task offline in under a minute on two cores.

Examples:
  train
  train --config configs/text.json --set optim.lr=1e-3 --set run.max_steps=2000 --out runs/text
  train --resume --out runs/text --set run.max_steps=4000
  train --init-from runs/text --config configs/text.json --set 'run.freeze=["backbone.embeddings.*"]' --out runs/ft
  train --config configs/transformer-2m.json --out runs/tpp
  train eval --checkpoint runs/text/checkpoints/step-2000

Config keys (JSON sections model, data, optim, run; see configs/README.md):
  run.max_steps run.checkpoint_every run.eval_every run.log_every run.seed run.keep_checkpoints
  run.max_nonfinite run.freeze run.max_memory  optim.lr optim.min_lr optim.schedule optim.warmup_steps
  optim.decay_steps optim.beta1 optim.beta2 optim.eps optim.weight_decay optim.grad_clip optim.grad_accum
  data.task data.train data.valid data.test data.modality data.tokenizer data.reset_at_doc_boundary
  data.batch_size data.seq_len data.eval_batches data.vocab data.tokens
  model.arch model.vocab_size model.d_model model.n_layer model.d_state model.expand model.d_conv model.dt_rank ...
  model.n_head model.n_kv_head model.head_dim model.d_ff model.rope_theta model.tie_embeddings model.init_std

Flags:
`

func newFlags(name, usage string, stdout io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err // pflag has printed the usage
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", trainUsage, stdout)
	config := fs.String("config", "", "run config JSON file (default: the built-in configs/quickstart.json)")
	sets := fs.StringArray("set", nil, "override a config key, e.g. --set optim.lr=1e-3 (repeatable; the value is JSON or a bare string)")
	out := fs.String("out", "", "run directory for metrics and checkpoints (default runs/<config>-<time>)")
	resume := fs.Bool("resume", false, "continue the run in --out from its newest valid checkpoint (its config, plus --set)")
	initFrom := fs.String("init-from", "", "start from these weights: a run directory, a checkpoint or a transformers Mamba or Llama directory")
	force := fs.Bool("force", false, "write into an --out that holds other files than a run's (metrics.* and checkpoints/ are created there)")
	maxMem := fs.String("max-memory", "", "refuse a run whose estimated memory exceeds this, e.g. 16GB (sets run.max_memory; default: the memory available)")
	device, precision := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *maxMem != "" {
		*sets = append(*sets, "run.max_memory="+*maxMem)
	}
	for _, f := range []struct{ flag, key, v string }{{"device", "run.device", *device}, {"precision", "run.precision", *precision}} {
		if fs.Changed(f.flag) {
			*sets = append(*sets, f.key+"="+f.v)
		}
	}
	var cfg train.Config
	var err error
	switch {
	case *resume && *out == "":
		return usagef("--resume needs --out DIR, the run to continue")
	case *resume && *config != "":
		return usagef("--resume uses the checkpoint's config; change it with --set, not --config")
	case *resume:
		cfg, err = train.ResumeConfig(*out, *sets)
	case *config != "":
		cfg, err = train.LoadConfig(*config, *sets)
	default:
		raw, _ := configs.FS.ReadFile(configs.Quickstart) // embedded: cannot fail
		if cfg, err = train.ParseConfig(raw, *sets); err != nil {
			err = fmt.Errorf("config %s: %w", configs.Quickstart, err)
		}
	}
	if err != nil {
		return usageError{err}
	}
	if *out == "" {
		name := strings.TrimSuffix(filepath.Base(*config), ".json")
		if *config == "" {
			name = strings.TrimSuffix(configs.Quickstart, ".json")
		}
		*out = filepath.Join("runs", name+"-"+time.Now().Format("20060102-150405"))
	}
	// The first SIGINT/SIGTERM (or SIGUSR1, which mpirun passes on to its ranks while
	// it kills them on SIGINT/SIGTERM) ends the run after the current step (or
	// micro-batch, or evaluation batch) and a checkpoint; a second one kills it at once.
	ctx, stop := notifyOnce(os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	defer stop()
	blas := kernel.BLAS()
	if blas.Warning != "" {
		fmt.Fprintln(stderr, "train: "+blas.Warning)
	}
	_, err = train.Run(ctx, cfg, train.Options{Out: *out, Resume: *resume, InitFrom: *initFrom, Force: *force,
		Stdout: stdout, Terminal: isTerminal(stdout), Notes: []string{"blas: " + blas.String(), "vector: " + math32.Choice()}, Comm: world})
	return err
}

// notifyOnce returns a context cancelled by the first of the signals; the
// handler is then removed, so that a second one has its default effect: the
// process dies at once.
func notifyOnce(sigs ...os.Signal) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && train.IsTerminal(f)
}
