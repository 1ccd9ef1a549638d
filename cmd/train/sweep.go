package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/mambago/mamba/internal/scaling"
	"github.com/mambago/mamba/internal/sweep"
	"github.com/mambago/mamba/train"
)

const sweepUsage = `Run a scaling-law sweep: a grid of ordinary runs, fitted and plotted.

Usage:
  train sweep --config FILE --out DIR [--parallel K] [--dry-run]
  train sweep fit --runs FILE.csv [--json]

Each grid point (arch × size × budget × seq_len × seed) is a run directory under
DIR, trained by this binary in a child process. Finished runs are skipped and
interrupted ones resumed, so the same command continues a killed sweep. At the end
DIR holds runs.csv (arch,params,tokens,loss,...; params = non-embedding parameters,
loss = final validation loss in nats per token), runs.json, fit.json and the plots
loss-vs-tokens.png, loss-vs-compute.png and loss-vs-params.png.

Examples:
  train sweep --config configs/sweeps/smoke.json --out runs/smoke
  train sweep --config configs/sweeps/text-bytes.json --out runs/scaling --dry-run
  train sweep fit --runs runs/scaling/runs.csv --json

Sweep configs are described in configs/sweeps/README.md.

Flags:
`

const fitUsage = `Fit L(N, D) = E + A/N^alpha + B/D^beta to each arch's runs (Chinchilla approach 3,
Huber loss on log L, bootstrap 95% intervals; approach 1 where the grid allows).

Usage:
  train sweep fit --runs FILE.csv [--json] [--bootstrap N] [--seed S]

The CSV's header starts with arch,params,tokens,loss (a "flops" column, if any, is
used for approach 1). Each arch needs at least 5 runs.

Flags:
`

func runSweep(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "fit" {
		return runSweepFit(args[1:], stdout)
	}
	fs := newFlags("sweep", sweepUsage, stdout)
	config := fs.String("config", "", "sweep config JSON file (configs/sweeps/)")
	out := fs.String("out", "", "sweep directory: a run directory per grid point, and the reports")
	par := fs.Int("parallel", 1, "runs at once; each gets GOMAXPROCS = NumCPU/K")
	dry := fs.Bool("dry-run", false, "print the planned runs and their compute, and exit")
	boot := fs.Int("bootstrap", 1000, "bootstrap resamples for the fit's intervals")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *config == "":
		return usagef("--config FILE is required (a sweep config, e.g. configs/sweeps/smoke.json)")
	case *out == "" && !*dry:
		return usagef("--out DIR is required")
	case *par < 1:
		return usagef("--parallel must be >= 1, got %d", *par)
	case *boot < 1:
		return usagef("--bootstrap must be >= 1, got %d", *boot)
	}
	cfg, err := sweep.LoadConfig(*config)
	if err != nil {
		return usageError{err}
	}
	plan, err := cfg.Plan()
	if err != nil {
		return usageError{fmt.Errorf("sweep config %s: %w", *config, err)}
	}
	if *dry {
		planTable(stdout, plan)
		return nil
	}
	if err := plan.CheckData(); err != nil {
		return usageError{fmt.Errorf("sweep config %s: %w", *config, err)}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this binary to run the runs: %w", err)
	}
	// SIGINT/SIGTERM: the runs checkpoint and stop; the same command resumes them. A
	// second signal kills the sweep at once, and with it its runs (see sweep.Run).
	ctx, stop := notifyOnce(os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = sweep.Run(ctx, &plan, sweep.Options{Out: *out, Parallel: *par, Exe: exe, Stdout: stdout})
	var ie *sweep.InputError
	switch {
	case errors.As(err, &ie):
		return usageError{err}
	case errors.Is(err, sweep.ErrInterrupted):
		return train.ErrInterrupted
	}
	// Report what finished, failed runs or not.
	if rerr := sweep.Report(&plan, *out, stdout, scaling.Options{Bootstrap: *boot}); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

func planTable(w io.Writer, p sweep.Plan) {
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header([]string{"run", "params", "non embedding", "seq len", "batch", "steps", "tokens", "flops", "lr"})
	for _, pt := range p.Points {
		lr := fmt.Sprintf("%.3g", pt.LR)
		if !pt.Resolved() {
			lr = "searched"
		}
		t.Append([]string{pt.Name, strconv.Itoa(pt.Params), strconv.Itoa(pt.NonEmbedding), strconv.Itoa(pt.SeqLen),
			strconv.Itoa(pt.TokensPerStep / pt.SeqLen), strconv.Itoa(pt.Steps), strconv.Itoa(pt.Steps * pt.TokensPerStep),
			fmt.Sprintf("%.3g", pt.FLOPs()), lr})
	}
	t.Render()
	for _, d := range p.Dropped {
		fmt.Fprintf(w, "dropped %s\n", d)
	}
	fmt.Fprintf(w, "%d runs, %.3g FLOPs in all\n", len(p.Points), p.FLOPs())
}

func runSweepFit(args []string, stdout io.Writer) error {
	fs := newFlags("sweep fit", fitUsage, stdout)
	runs := fs.String("runs", "", "runs CSV (header arch,params,tokens,loss,...), e.g. DIR/runs.csv of a sweep")
	asJSON := fs.Bool("json", false, `print one JSON object {"<arch>": {"E", "A", "alpha", "B", "beta", "a", "b", "ci", "n_runs", ...}}`)
	boot := fs.Int("bootstrap", 1000, "bootstrap resamples for the intervals")
	seed := fs.Uint64("seed", 1, "bootstrap resampling seed")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *runs == "":
		return usagef("--runs FILE.csv is required")
	case *boot < 1:
		return usagef("--bootstrap must be >= 1, got %d", *boot)
	}
	f, err := os.Open(*runs)
	if err != nil {
		return usagef("--runs %s: %v", *runs, errors.Unwrap(err))
	}
	defer f.Close()
	rs, err := scaling.ReadRunsCSV(f)
	if err != nil {
		return usagef("%s: %v", *runs, err)
	}
	fits, err := scaling.FitByArch(rs, scaling.Options{Bootstrap: *boot, Seed: *seed})
	if err != nil {
		return usagef("%s: %v", *runs, err)
	}
	if *asJSON {
		b, err := json.Marshal(fits)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	sweep.FitTable(stdout, fits)
	return nil
}
