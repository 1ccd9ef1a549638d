package sweep

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/scaling"
	"github.com/mambago/mamba/train"
)

// Row is one finished run in runs.csv and runs.json.
type Row struct {
	Arch        string   `json:"arch"`
	Params      int      `json:"params"` // non-embedding parameters (N)
	Tokens      int64    `json:"tokens"` // training tokens (D)
	Loss        float64  `json:"loss"`   // final validation loss, nats per token
	FLOPs       float64  `json:"flops"`  // tokens × FLOPs per token
	TotalParams int      `json:"total_params"`
	Size        string   `json:"size"`
	Budget      string   `json:"budget"`
	SeqLen      int      `json:"seq_len"`
	BatchSize   int      `json:"batch_size"`
	Steps       int      `json:"steps"`
	Seed        uint64   `json:"seed"`
	LR          float64  `json:"lr"`
	BestLoss    float64  `json:"best_loss"`
	BitsPerByte *float64 `json:"val_bits_per_byte"` // final; null when the tokenizer does not tell
	WallS       float64  `json:"wall_s"`
	TokensPerS  float64  `json:"tokens_per_s"`
	Run         string   `json:"run"` // run directory under the sweep's
}

var rowHeader = []string{"arch", "params", "tokens", "loss", "flops", "total_params", "size", "budget", "seq_len",
	"batch_size", "steps", "seed", "lr", "best_loss", "val_bits_per_byte", "wall_s", "tokens_per_s", "run"}

func (r Row) record() []string {
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	bpb := ""
	if r.BitsPerByte != nil {
		bpb = g(*r.BitsPerByte)
	}
	return []string{r.Arch, strconv.Itoa(r.Params), strconv.FormatInt(r.Tokens, 10), g(r.Loss), g(r.FLOPs),
		strconv.Itoa(r.TotalParams), r.Size, r.Budget, strconv.Itoa(r.SeqLen), strconv.Itoa(r.BatchSize),
		strconv.Itoa(r.Steps), strconv.FormatUint(r.Seed, 10), g(r.LR), g(r.BestLoss), bpb, g(r.WallS), g(r.TokensPerS), r.Run}
}

// Files a sweep writes into its directory.
const (
	RunsCSV         = "runs.csv"
	RunsJSON        = "runs.json"
	FitJSON         = "fit.json"
	LRSearchJSON    = "lr-search.json" // with lr.search: each group's multipliers, losses and winner
	PlotLossTokens  = "loss-vs-tokens.png"
	PlotLossCompute = "loss-vs-compute.png"
	PlotLossParams  = "loss-vs-params.png"
	PlotLossSeqLen  = "loss-vs-seq-len.png" // when the sweep has several seq_lens
)

// Report gathers the finished runs of plan in out and writes runs.csv, runs.json,
// fit.json and the plots, and prints the table of runs and of fits on w. An arch with
// too few finished runs to fit is noted on w and left out of fit.json.
func Report(plan *Plan, out string, w io.Writer, fo scaling.Options) error {
	if err := plan.Resolve(out); err != nil {
		return err
	}
	if err := lrSearch(plan, out, w); err != nil {
		return err
	}
	var rows []Row
	curves := map[string][2][]float64{}
	for _, pt := range plan.Points {
		if !pt.Resolved() || !plan.InGrid(pt) {
			continue
		}
		dir := filepath.Join(out, pt.Name)
		s, err := train.ReadSummary(dir)
		if err != nil || !s.Finished || s.ConfigSHA256 != configHash(pt.JSON) || s.FinalValLoss == nil {
			continue
		}
		best := *s.FinalValLoss
		if s.BestValLoss != nil {
			best = *s.BestValLoss
		}
		rows = append(rows, Row{Arch: s.Arch, Params: s.NonEmbeddingParams, Tokens: s.Tokens, Loss: *s.FinalValLoss,
			FLOPs: s.FLOPs, TotalParams: s.Params, Size: pt.Size, Budget: pt.Budget, SeqLen: s.SeqLen,
			BatchSize: pt.Config.Data.BatchSize, Steps: s.Step, Seed: pt.Seed, LR: pt.LR, BestLoss: best,
			BitsPerByte: s.FinalValBitsPerByte, WallS: s.WallS, TokensPerS: s.TokensPerS, Run: pt.Name})
		if curves[pt.Name], err = valCurve(dir, s.TokensPerStep); err != nil {
			return err
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no finished run yet: nothing to report")
		return nil
	}
	if err := writeRuns(out, rows); err != nil {
		return err
	}
	runsTable(w, rows)

	fits := map[string]scaling.Fit{}
	var runs []scaling.Run
	for _, arch := range archsOf(rows) {
		var rs []scaling.Run
		for _, r := range rows {
			if r.Arch == arch {
				rs = append(rs, scaling.Run{Arch: arch, Params: float64(r.Params), Tokens: float64(r.Tokens), Loss: r.Loss, FLOPs: r.FLOPs})
			}
		}
		runs = append(runs, rs...)
		f, err := scaling.FitLaw(rs, fo)
		if err != nil {
			fmt.Fprintf(w, "no fit for %s: %v\n", arch, err)
			continue
		}
		fits[arch] = f
	}
	fj, err := json.MarshalIndent(fits, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, FitJSON), append(fj, '\n')); err != nil {
		return err
	}
	if len(fits) > 0 {
		FitTable(w, fits)
	}
	return plots(out, rows, curves, runs, fits)
}

// SearchResult is one LR-search group's outcome in lr-search.json.
type SearchResult struct {
	Multipliers []float64  `json:"multipliers"`
	LRs         []float64  `json:"lrs"`
	Losses      []*float64 `json:"losses"` // final validation loss; null while unfinished
	Chosen      float64    `json:"chosen"` // the winning multiplier; 0 while the search runs
}

// lrSearch prints and writes lr-search.json for a sweep with an LR search.
func lrSearch(plan *Plan, out string, w io.Writer) error {
	res := map[string]*SearchResult{}
	for _, pt := range plan.Points {
		if !pt.Searching {
			continue
		}
		r := res[pt.Group]
		if r == nil {
			r = &SearchResult{Chosen: plan.Chosen[pt.Group]}
			res[pt.Group] = r
		}
		var loss *float64
		if s, err := train.ReadSummary(filepath.Join(out, pt.Name)); err == nil && s.Finished {
			loss = s.FinalValLoss
		}
		r.Multipliers, r.LRs, r.Losses = append(r.Multipliers, pt.LRMult), append(r.LRs, pt.LR), append(r.Losses, loss)
	}
	if len(res) == 0 {
		return nil
	}
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header([]string{"lr search", "lr × multiplier: final val loss", "chosen"})
	for _, g := range sortedKeys(res) {
		r := res[g]
		var cells []string
		for i, m := range r.Multipliers {
			cells = append(cells, fmt.Sprintf("%.3g × %g: %s", r.LRs[i]/m, m, fmtLoss(r.Losses[i])))
		}
		chosen := "-"
		if r.Chosen != 0 {
			chosen = strconv.FormatFloat(r.Chosen, 'g', -1, 64)
		}
		t.Append([]string{g, strings.Join(cells, "; "), chosen})
	}
	t.Render()
	j, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, LRSearchJSON), append(j, '\n'))
}

// valCurve reads (tokens, validation loss) at every evaluation of a run.
func valCurve(dir string, tokensPerStep int) ([2][]float64, error) {
	var c [2][]float64
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return c, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m struct {
			Step    int      `json:"step"`
			ValLoss *float64 `json:"val_loss"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.ValLoss != nil {
			c[0] = append(c[0], float64(m.Step)*float64(tokensPerStep))
			c[1] = append(c[1], *m.ValLoss)
		}
	}
	return c, nil
}

func writeRuns(out string, rows []Row) error {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write(rowHeader)
	for _, r := range rows {
		cw.Write(r.record())
	}
	cw.Flush()
	if err := atomicfile.WriteFile(filepath.Join(out, RunsCSV), b.Bytes()); err != nil {
		return err
	}
	j, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, RunsJSON), append(j, '\n'))
}

func runsTable(w io.Writer, rows []Row) {
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header([]string{"run", "params (non embedding)", "tokens", "flops", "lr", "val loss", "bits per byte", "wall"})
	for _, r := range rows {
		bpb := "-"
		if r.BitsPerByte != nil {
			bpb = fmt.Sprintf("%.4f", *r.BitsPerByte)
		}
		t.Append([]string{r.Run, strconv.Itoa(r.Params), strconv.FormatInt(r.Tokens, 10), fmt.Sprintf("%.3g", r.FLOPs),
			fmt.Sprintf("%.3g", r.LR), fmt.Sprintf("%.4f", r.Loss), bpb, time.Duration(r.WallS * float64(time.Second)).Round(time.Second).String()})
	}
	t.Render()
}

// FitTable prints each arch's fitted law with its bootstrap intervals.
func FitTable(w io.Writer, fits map[string]scaling.Fit) {
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header([]string{"arch", "runs", "E", "A", "alpha", "B", "beta", "a = beta/(alpha+beta)", "b = alpha/(alpha+beta)", "approach 1: a, b"})
	for _, arch := range sortedKeys(fits) {
		f := fits[arch]
		cell := func(name string, v float64) string {
			ci, ok := f.CI[name]
			if !ok {
				return fmt.Sprintf("%.4g", v)
			}
			return fmt.Sprintf("%.4g [%.4g, %.4g]", v, ci[0], ci[1])
		}
		env := "-"
		if f.Envelope != nil {
			env = fmt.Sprintf("%.3f, %.3f", f.Envelope.A, f.Envelope.B)
		}
		t.Append([]string{arch, strconv.Itoa(f.NRuns), cell("E", f.E), cell("A", f.A), cell("alpha", f.Alpha),
			cell("B", f.B), cell("beta", f.Beta), cell("a", f.ExpA), cell("b", f.ExpB), env})
	}
	t.Render()
}

func archsOf(rows []Row) []string {
	var archs []string
	for _, r := range rows {
		if !slices.Contains(archs, r.Arch) {
			archs = append(archs, r.Arch)
		}
	}
	return archs
}

// plots draws the three figures of a sweep.
func plots(out string, rows []Row, curves map[string][2][]float64, runs []scaling.Run, fits map[string]scaling.Fit) error {
	archs := archsOf(rows)
	var sizes []string
	for _, r := range rows {
		if !slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
	}
	// Loss against tokens: a line per run, coloured by size, dashed for the second arch.
	lt := scaling.Chart{Title: "validation loss during training", XLabel: "training tokens", YLabel: "validation loss (nats/token)", LogX: true, LogY: true}
	labelled := map[string]bool{}
	for _, r := range rows {
		key := r.Arch + " " + r.Size
		s := scaling.Series{Group: slices.Index(sizes, r.Size), Dashed: slices.Index(archs, r.Arch)%2 == 1, X: curves[r.Run][0], Y: curves[r.Run][1]}
		if !labelled[key] {
			s.Label, labelled[key] = key, true
		}
		lt.Lines = append(lt.Lines, s)
	}
	// Final loss against compute with each arch's fitted frontier, and against parameters.
	lc := scaling.Chart{Title: "final loss against compute", XLabel: "training FLOPs", YLabel: "validation loss (nats/token)", LogX: true, LogY: true}
	lp := scaling.Chart{Title: "final loss against parameters", XLabel: "non-embedding parameters", YLabel: "validation loss (nats/token)", LogX: true, LogY: true}
	for g, arch := range archs {
		var c, n, l, ks []float64
		for _, r := range runs {
			if r.Arch == arch {
				c, n, l = append(c, r.Compute()), append(n, r.Params), append(l, r.Loss)
				ks = append(ks, r.Compute()/(r.Params*r.Tokens))
			}
		}
		lc.Points = append(lc.Points, scaling.Series{Label: arch, Group: g, X: c, Y: l})
		lp.Points = append(lp.Points, scaling.Series{Label: arch, Group: g, X: n, Y: l})
		if f, ok := fits[arch]; ok {
			slices.Sort(ks)
			k := ks[len(ks)/2] // median FLOPs per parameter per token
			fc, fl := f.Frontier(slices.Min(c)/2, slices.Max(c)*2, k)
			lc.Lines = append(lc.Lines, scaling.Series{Label: arch + " fitted frontier", Group: g, Dashed: true, X: fc, Y: fl})
		}
		// Runs of one budget joined across sizes.
		var budgets []string
		for _, r := range rows {
			if r.Arch == arch && !slices.Contains(budgets, r.Budget) {
				budgets = append(budgets, r.Budget)
			}
		}
		for _, b := range budgets {
			var x, y []float64
			for _, r := range rows {
				if r.Arch == arch && r.Budget == b {
					x, y = append(x, float64(r.Params)), append(y, r.Loss)
				}
			}
			lp.Lines = append(lp.Lines, scaling.Series{Group: g, X: x, Y: y})
		}
	}
	charts := map[string]scaling.Chart{PlotLossTokens: lt, PlotLossCompute: lc, PlotLossParams: lp}
	// Context studies: final loss against the sequence length, a line per arch and size.
	var lens []int
	for _, r := range rows {
		if !slices.Contains(lens, r.SeqLen) {
			lens = append(lens, r.SeqLen)
		}
	}
	if len(lens) > 1 {
		ls := scaling.Chart{Title: "final loss against context length", XLabel: "sequence length (tokens)", YLabel: "validation loss (nats/token)", LogX: true}
		for g, arch := range archs {
			for _, size := range sizes {
				se := scaling.Series{Label: arch + " " + size, Group: g*len(sizes) + slices.Index(sizes, size)}
				for _, r := range rows {
					if r.Arch == arch && r.Size == size {
						se.X, se.Y = append(se.X, float64(r.SeqLen)), append(se.Y, r.Loss)
					}
				}
				if len(se.X) > 0 {
					ls.Lines, ls.Points = append(ls.Lines, se), append(ls.Points, scaling.Series{Group: se.Group, X: se.X, Y: se.Y})
				}
			}
		}
		charts[PlotLossSeqLen] = ls
	}
	for name, c := range charts {
		if err := c.WritePNG(filepath.Join(out, name)); err != nil {
			return err
		}
	}
	return nil
}
