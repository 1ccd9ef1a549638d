// Command generation measures generation speed against the context already held, for a Mamba and
// a Transformer++ of the same width and about the same parameters (see README.md):
//
//	go run ./experiments/generation --out experiments/generation/results
//
// For each pair of models, arch, batch size and context length c it makes a generator with c
// positions already in its state (Mamba) or key/value cache (Transformer++), takes two warm-up
// steps and times steps until --seconds have passed or --max-steps were taken. It writes
// results.json, table.md (tokens/s and the Mamba/Transformer++ ratio) and one PNG per pair.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mambago/mamba/configs"
	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/scaling"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/train"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return
	}
	fmt.Fprintln(os.Stderr, "generation: "+err.Error())
	os.Exit(2)
}

const usage = `Measure generation tokens/s against context length, Mamba and Transformer++.

Usage:
  go run ./experiments/generation [--out DIR] [--pairs bench,d768] [--contexts 1,16,...]
                                  [--batches 1,16] [--seconds S] [--max-steps N]

Pairs (same width, about the same parameters, vocabulary 256):
  bench  Mamba d_model 256 × 4 layers (configs/bench.json, 1.82M)
         Transformer++ d_model 256 × 2 layers (configs/bench-transformer.json, 1.64M)
  d768   Mamba d_model 768 × 24 layers (90.7M)
         Transformer++ d_model 768 × 12 layers, 12 heads, d_ff 2240 (90.5M)

Flags:
`

// pair is two models to compare.
type pair struct {
	name          string
	mamba, tpp    layers.Config
	mDesc, tpDesc string
}

func pairs() (map[string]pair, error) {
	read := func(name string) (layers.Config, error) {
		raw, err := configs.FS.ReadFile(name)
		if err != nil {
			return layers.Config{}, err
		}
		c, err := train.ParseConfig(raw, nil)
		return c.Model, err
	}
	bm, err := read("bench.json")
	if err != nil {
		return nil, err
	}
	bt, err := read("bench-transformer.json")
	if err != nil {
		return nil, err
	}
	dm, dt := bm, bt
	dm.DModel, dm.NLayer = 768, 24
	dt.DModel, dt.NLayer, dt.NHead, dt.DFF = 768, 12, 12, 2240
	return map[string]pair{
		"bench": {"bench", bm, bt, "Mamba d256×4", "Transformer++ d256×2"},
		"d768":  {"d768", dm, dt, "Mamba d768×24", "Transformer++ d768×12"},
	}, nil
}

// Row is one measurement.
type Row struct {
	Pair       string  `json:"pair"`
	Arch       string  `json:"arch"`
	Model      string  `json:"model"`
	Params     int     `json:"params"`
	Batch      int     `json:"batch"`
	Context    int     `json:"context"`
	Steps      int     `json:"steps"`
	Seconds    float64 `json:"seconds"`
	TokensPerS float64 `json:"tokens_per_s"`
}

// Results is results.json.
type Results struct {
	Date       string `json:"date"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	BLAS       string `json:"blas"`
	Rows       []Row  `json:"rows"`
}

func ints(s, name string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("--%s: %q is not a positive integer", name, f)
		}
		out = append(out, v)
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("generation", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	out := fs.String("out", filepath.Join("experiments", "generation", "results"), "output directory")
	pairList := fs.String("pairs", "bench,d768", "model pairs to measure: bench, d768")
	ctxList := fs.String("contexts", "1,16,128,1024,4096,16384", "positions already in the state or cache")
	batchList := fs.String("batches", "1,16", "batch sizes")
	seconds := fs.Float64("seconds", 0.5, "time each point for at least this long (or --max-steps steps)")
	maxSteps := fs.Int("max-steps", 64, "most timed steps of a point")
	if err := fs.Parse(args); err != nil {
		return err
	}
	contexts, err := ints(*ctxList, "contexts")
	if err != nil {
		return err
	}
	batches, err := ints(*batchList, "batches")
	if err != nil {
		return err
	}
	if *maxSteps < 1 || !(*seconds >= 0) {
		return fmt.Errorf("--max-steps must be positive and --seconds not negative")
	}
	all, err := pairs()
	if err != nil {
		return err
	}
	var chosen []pair
	for p := range strings.SplitSeq(*pairList, ",") {
		pr, ok := all[p]
		if !ok {
			return fmt.Errorf("--pairs: unknown pair %q (want bench or d768)", p)
		}
		chosen = append(chosen, pr)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	res := Results{Date: time.Now().UTC().Format(time.RFC3339), GOMAXPROCS: runtime.GOMAXPROCS(0), BLAS: kernel.BLAS().String()}
	start := time.Now()
	for _, p := range chosen {
		for _, m := range []struct {
			cfg  layers.Config
			desc string
		}{{p.mamba, p.mDesc}, {p.tpp, p.tpDesc}} {
			lm, err := layers.NewLM(m.cfg, 1)
			if err != nil {
				return err
			}
			for _, b := range batches {
				for _, c := range contexts {
					r, err := measure(lm, b, c, *seconds, *maxSteps)
					if err != nil {
						return fmt.Errorf("%s, batch %d, context %d: %w", m.desc, b, c, err)
					}
					r.Pair, r.Arch, r.Model, r.Params = p.name, m.cfg.Arch, m.desc, m.cfg.NumParams()
					res.Rows = append(res.Rows, r)
					fmt.Fprintf(stderr, "%6.0f s  %-22s batch %2d  context %6d  %10.1f tokens/s\n", time.Since(start).Seconds(), m.desc, b, c, r.TokensPerS)
				}
			}
		}
	}
	return write(*out, res, chosen, stdout)
}

// measure times steps of a generator of m at batch b with c positions already held.
func measure(m layers.LM, b, c int, seconds float64, maxSteps int) (Row, error) {
	defer debug.FreeOSMemory() // a long cache is not kept into the next point
	const warm = 2
	g, err := m.NewGenerator(b, c+warm+maxSteps)
	if err != nil {
		return Row{}, err
	}
	defer g.Close()
	rng := rand.New(rand.NewPCG(uint64(b), uint64(c)))
	V := m.Config().VocabSize
	tok := func(n int) []int32 {
		t := make([]int32, n)
		for i := range t {
			t[i] = int32(rng.IntN(V))
		}
		return t
	}
	p := min(c, 16)
	if _, err := g.Prefill(tok(b*p), p); err != nil {
		return Row{}, err
	}
	if err := g.Advance(c - p); err != nil {
		return Row{}, err
	}
	next := tok(b)
	for range warm {
		if _, err := g.Step(next); err != nil {
			return Row{}, err
		}
	}
	t0 := time.Now()
	n := 0
	for n < maxSteps && (n == 0 || time.Since(t0).Seconds() < seconds) {
		if _, err := g.Step(next); err != nil {
			return Row{}, err
		}
		n++
	}
	el := time.Since(t0).Seconds()
	return Row{Batch: b, Context: c, Steps: n, Seconds: el, TokensPerS: float64(n*b) / el}, nil
}

// write saves results.json, table.md and the plots, and prints the table.
func write(dir string, res Results, ps []pair, stdout io.Writer) error {
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n')); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "Measured %s, GOMAXPROCS %d, %s.\n", res.Date, res.GOMAXPROCS, res.BLAS)
	for _, p := range ps {
		rows := filter(res.Rows, func(r Row) bool { return r.Pair == p.name })
		batches, contexts := keys(rows, func(r Row) int { return r.Batch }), keys(rows, func(r Row) int { return r.Context })
		fmt.Fprintf(&md, "\n%s (%s parameters) against %s (%s), tokens/s:\n\n| context |", p.mDesc, commas(p.mamba.NumParams()), p.tpDesc, commas(p.tpp.NumParams()))
		for _, b := range batches {
			fmt.Fprintf(&md, " Mamba, batch %d | Transformer++, batch %d | ratio |", b, b)
		}
		md.WriteString("\n|---:|" + strings.Repeat("---:|---:|---:|", len(batches)) + "\n")
		var chart scaling.Chart
		chart.Title, chart.XLabel, chart.YLabel, chart.LogX, chart.LogY = p.mDesc+" vs "+p.tpDesc, "context (positions held)", "generated tokens/s", true, true
		for _, c := range contexts {
			fmt.Fprintf(&md, "| %s |", commas(c))
			for _, b := range batches {
				m, t := find(rows, layers.ArchMamba, b, c), find(rows, layers.ArchTransformer, b, c)
				fmt.Fprintf(&md, " %.1f | %.1f | %.2f× |", m, t, m/t)
			}
			md.WriteString("\n")
		}
		for bi, b := range batches {
			for ai, arch := range []string{layers.ArchMamba, layers.ArchTransformer} {
				s := scaling.Series{Label: fmt.Sprintf("%s, batch %d", []string{p.mDesc, p.tpDesc}[ai], b), Group: ai, Dashed: bi > 0}
				for _, c := range contexts {
					s.X, s.Y = append(s.X, float64(c)), append(s.Y, find(rows, arch, b, c))
				}
				chart.Lines, chart.Points = append(chart.Lines, s), append(chart.Points, scaling.Series{Group: ai, X: s.X, Y: s.Y})
			}
		}
		if err := chart.WritePNG(filepath.Join(dir, "generation-"+p.name+".png")); err != nil {
			return err
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "table.md"), []byte(md.String())); err != nil {
		return err
	}
	fmt.Fprint(stdout, md.String())
	return nil
}

func filter(rows []Row, keep func(Row) bool) []Row {
	var out []Row
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// keys returns the distinct values of f over rows, in increasing order.
func keys(rows []Row, f func(Row) int) []int {
	var out []int
	for _, r := range rows {
		if !slices.Contains(out, f(r)) {
			out = append(out, f(r))
		}
	}
	slices.Sort(out)
	return out
}

func find(rows []Row, arch string, b, c int) float64 {
	for _, r := range rows {
		if r.Arch == arch && r.Batch == b && r.Context == c {
			return r.TokensPerS
		}
	}
	return 0
}

// commas writes n with thousands separators.
func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
