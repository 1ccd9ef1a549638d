package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mambago/mamba/train"
)

// Point is one run of a sweep: a grid point and its resolved run config.
type Point struct {
	Name   string // the run directory under the sweep's output, unique and stable
	Arch   string
	Size   string
	Budget string // the budget's label: tpp20, c2e14 or d1e8
	SeqLen int
	Seed   uint64

	Config train.Config
	JSON   []byte // Config.JSON(): what run-config.json holds and summary.json hashes

	Params        int     // total
	NonEmbedding  int     // N of the scaling law
	FLOPsPerToken float64 // layers.Config.FLOPsPerToken(seq_len)
	TokensPerStep int
	Steps         int
	LR            float64 // the rule's rate × lr.scale × LRMult; 0 until resolved

	// LR search (lr.search): Group is the point's (arch, size, seq_len); a Searching
	// point is one of its search runs, trained at LRMult × the rule's rate. The other
	// points of a group take the winning multiplier when Plan.Resolve finds it.
	Group     string
	Searching bool
	LRMult    float64

	dropped string   // why the grid point is dropped; "" if it is not
	base    []byte   // the base run config and the overrides of the point, optim.lr aside
	sets    []string //
	ruleLR  float64  // the LR rule's rate × lr.scale
}

// Resolved reports whether the point's config is known (its LR search, if any, is over).
func (p Point) Resolved() bool { return p.JSON != nil }

// resolve sets the point's learning rate to mult × its rule's rate and resolves its
// config.
func (p *Point) resolve(mult float64) error {
	p.LRMult, p.LR = mult, p.ruleLR*mult
	c, err := train.ParseConfig(p.base, append(slices.Clip(p.sets), "optim.lr="+strconv.FormatFloat(p.LR, 'g', -1, 64)))
	if err != nil {
		return fmt.Errorf("run %s: %w", p.Name, err)
	}
	p.Config, p.JSON = c, c.JSON()
	return nil
}

// FLOPs is the point's planned training compute.
func (p Point) FLOPs() float64 {
	return float64(p.Steps) * float64(p.TokensPerStep) * p.FLOPsPerToken
}

// Plan is the resolved grid: the runs in the order they are run (the LR search's
// first), and the grid points dropped by the budget's bounds.
type Plan struct {
	Points  []Point
	Dropped []string
	// Chosen holds the winning multiplier of each LR-search group once known.
	Chosen map[string]float64
}

// FLOPs is the planned compute of the whole sweep.
func (p Plan) FLOPs() float64 {
	var s float64
	for _, pt := range p.Points {
		s += pt.FLOPs()
	}
	return s
}

// Plan resolves every grid point of the sweep, in run order: sizes in ladder order,
// then budgets, sequence lengths and seeds, with the archs innermost so that an
// interrupted sweep has comparable runs of each.
//
// A run's config is the base, then set, then the size's ladder config's model
// section, its model and by_arch keys, model.arch, data.seq_len and data.batch_size
// (context studies), run.seed, and last the values the sweep computes: run.max_steps
// = round(D / tokens per step) with D from the budget, optim.lr from the LR rule,
// optim.warmup_steps, run.eval_every, run.checkpoint_every and run.log_every.
func (c Config) Plan() (Plan, error) {
	base, err := c.baseJSON()
	if err != nil {
		return Plan{}, err
	}
	var common []string
	for _, k := range sortedKeys(c.Set) {
		common = append(common, k+"="+string(c.Set[k]))
	}
	if _, err := train.ParseConfig(base, common); err != nil {
		return Plan{}, fmt.Errorf("base with set: %w", err)
	}
	sizes := make([][]string, len(c.Sizes))
	for i, s := range c.Sizes {
		if sizes[i], err = s.sets(); err != nil {
			return Plan{}, fmt.Errorf("sizes[%d] (%s): %w", i, s.Name, err)
		}
	}
	seqLens := c.SeqLens
	if len(seqLens) == 0 {
		seqLens = []int{0} // the base's
	}
	var p Plan
	for i, size := range c.Sizes {
		for _, budget := range c.budgets() {
			for _, L := range seqLens {
				for _, seed := range c.Seeds {
					for _, arch := range c.Archs {
						sets := slices.Concat(common, sizes[i], modelSets(size.ByArch[arch]), []string{"model.arch=" + strconv.Quote(arch)})
						pt, ok, err := c.point(base, sets, arch, size.Name, budget, L, seed)
						if err != nil {
							return Plan{}, err
						}
						if !ok {
							p.Dropped = append(p.Dropped, pt.Name+" ("+pt.dropped+")")
							continue
						}
						p.Points = append(p.Points, pt)
					}
				}
			}
		}
	}
	if len(p.Points) == 0 {
		return Plan{}, fmt.Errorf("no run is left: every grid point is dropped (%s)", strings.Join(p.Dropped, ", "))
	}
	p.Chosen = map[string]float64{}
	if len(c.LR.Search) == 0 {
		for i := range p.Points {
			if err := p.Points[i].resolve(1); err != nil {
				return Plan{}, err
			}
		}
		return p, nil
	}
	// The first point of each group with the first seed becomes the group's search
	// runs, which go first; the group's other points wait for the winner.
	var search, rest []Point
	seen := map[string]bool{}
	for _, pt := range p.Points {
		if pt.Seed == c.Seeds[0] && !seen[pt.Group] {
			seen[pt.Group] = true
			for _, m := range c.LR.Search {
				s := pt
				s.Name += "-lrx" + strconv.FormatFloat(m, 'g', -1, 64)
				s.Searching = true
				if err := s.resolve(m); err != nil {
					return Plan{}, err
				}
				search = append(search, s)
			}
			continue
		}
		rest = append(rest, pt)
	}
	p.Points = append(search, rest...)
	return p, nil
}

// Resolve finishes the LR search of every group whose search runs in out are all
// finished: the multiplier of the lowest final validation loss wins (the first in
// lr.search order among equals) and the group's other points take it.
func (p *Plan) Resolve(out string) error {
	best := map[string]float64{}
	loss := map[string]float64{}
	open := map[string]bool{}
	for _, pt := range p.Points {
		if !pt.Searching || p.Chosen[pt.Group] != 0 {
			continue
		}
		s, err := train.ReadSummary(filepath.Join(out, pt.Name))
		if err != nil || !s.Finished || s.ConfigSHA256 != configHash(pt.JSON) || s.FinalValLoss == nil {
			open[pt.Group] = true
			continue
		}
		if l, ok := loss[pt.Group]; !ok || *s.FinalValLoss < l {
			best[pt.Group], loss[pt.Group] = pt.LRMult, *s.FinalValLoss
		}
	}
	for g, m := range best {
		if !open[g] {
			p.Chosen[g] = m
		}
	}
	for i := range p.Points {
		pt := &p.Points[i]
		if m := p.Chosen[pt.Group]; !pt.Resolved() && m != 0 {
			if err := pt.resolve(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// InGrid reports whether a point stands for its grid point: every point but the
// search runs that lost.
func (p Plan) InGrid(pt Point) bool {
	return !pt.Searching || p.Chosen[pt.Group] == pt.LRMult
}

// point resolves one grid point; ok is false when it is dropped for its step count.
func (c Config) point(base []byte, sets []string, arch, size string, b budget, L int, seed uint64) (pt Point, ok bool, err error) {
	pt = Point{Arch: arch, Size: size, Budget: b.label, Seed: seed}
	pt.Name = fmt.Sprintf("%s-%s-%s", arch, size, b.label)
	if L > 0 {
		pt.Name += "-L" + strconv.Itoa(L)
	}
	pt.Name += "-s" + strconv.FormatUint(seed, 10)
	fail := func(err error) (Point, bool, error) { return pt, false, fmt.Errorf("run %s: %w", pt.Name, err) }

	sets = append(sets, fmt.Sprintf("run.seed=%d", seed))
	c0, err := train.ParseConfig(base, sets)
	if err != nil {
		return fail(err)
	}
	if L > 0 {
		tps := c.TokensPerStep
		if tps == 0 {
			tps = c0.Data.BatchSize * c0.Data.SeqLen
		}
		if tps%L != 0 {
			return fail(fmt.Errorf("seq_len %d does not divide %d tokens per step (set tokens_per_step)", L, tps))
		}
		sets = append(sets, fmt.Sprintf("data.seq_len=%d", L))
		sets = append(sets, c.split(tps/L, L)...)
		if c0, err = train.ParseConfig(base, sets); err != nil {
			return fail(err)
		}
	} else if c.TokensPerStep > 0 {
		if c.TokensPerStep%c0.Data.SeqLen != 0 {
			return fail(fmt.Errorf("tokens_per_step %d is not a multiple of data.seq_len %d", c.TokensPerStep, c0.Data.SeqLen))
		}
		sets = append(sets, c.split(c.TokensPerStep/c0.Data.SeqLen, c0.Data.SeqLen)...)
		if c0, err = train.ParseConfig(base, sets); err != nil {
			return fail(err)
		}
	}
	m := c0.Model
	pt.SeqLen = c0.Data.SeqLen
	pt.Params = m.NumParams()
	pt.NonEmbedding = pt.Params - m.EmbeddingParams()
	pt.FLOPsPerToken = m.FLOPsPerToken(pt.SeqLen)
	pt.TokensPerStep = c0.Data.BatchSize * c0.Data.SeqLen * c0.Optim.GradAccum
	var tokens float64
	switch b.kind {
	case "tpp":
		tokens = b.value * float64(pt.NonEmbedding)
	case "c":
		tokens = b.value / pt.FLOPsPerToken
	default:
		tokens = b.value
	}
	pt.Steps = int(math.Round(tokens / float64(pt.TokensPerStep)))
	tpp := float64(pt.Steps*pt.TokensPerStep) / float64(pt.NonEmbedding)
	switch b := c.Budget; {
	case pt.Steps < b.MinSteps:
		pt.dropped = fmt.Sprintf("%d steps < budget.min_steps %d", pt.Steps, b.MinSteps)
	case tpp < b.MinTokensPerParam:
		pt.dropped = fmt.Sprintf("%.3g tokens per parameter < budget.min_tokens_per_param %g", tpp, b.MinTokensPerParam)
	case b.MaxTokensPerParam > 0 && tpp > b.MaxTokensPerParam:
		pt.dropped = fmt.Sprintf("%.3g tokens per parameter > budget.max_tokens_per_param %g", tpp, b.MaxTokensPerParam)
	}
	if pt.dropped != "" {
		return pt, false, nil
	}
	switch c.LR.Rule {
	case RulePaper:
		pt.ruleLR = PaperLR(float64(pt.Params)) * c.LR.Scale
	default:
		pt.ruleLR = c0.Optim.LR * c.LR.Scale
	}
	pt.Group = fmt.Sprintf("%s-%s", arch, size)
	if L > 0 {
		pt.Group += "-L" + strconv.Itoa(L)
	}
	every := func(n int) int { return max(1, pt.Steps/n) }
	evalEvery := every(c.Evals)
	sets = append(sets,
		fmt.Sprintf("run.max_steps=%d", pt.Steps),
		fmt.Sprintf("run.eval_every=%d", evalEvery),
		fmt.Sprintf("run.checkpoint_every=%d", every(c.Checkpoints)),
		fmt.Sprintf("run.log_every=%d", max(1, min(c0.Run.LogEvery, evalEvery))))
	if c.WarmupFraction > 0 {
		sets = append(sets, fmt.Sprintf("optim.warmup_steps=%d", int(math.Round(c.WarmupFraction*float64(pt.Steps)))))
	}
	// Validate now, at the rule's rate; the point is resolved once its rate is known.
	pt.base, pt.sets = base, sets
	if _, err := train.ParseConfig(base, append(slices.Clip(sets), "optim.lr="+strconv.FormatFloat(pt.ruleLR, 'g', -1, 64))); err != nil {
		return fail(err)
	}
	return pt, true, nil
}

// CheckData reports the first shard file that a run of the plan needs and that
// does not exist.
func (p Plan) CheckData() error {
	for _, pt := range p.Points {
		if d := pt.Config.Data; d.Task == train.TaskShards {
			for _, f := range []struct{ key, path string }{{"data.train", d.Train}, {"data.valid", d.Valid}} {
				if _, err := os.Stat(f.path); err != nil {
					return fmt.Errorf("run %s: %s %s does not exist: make it with `train prepare` (see README \"Data\")", pt.Name, f.key, f.path)
				}
			}
		}
	}
	return nil
}

// baseJSON returns the base run config as JSON: the file Base names, or Base itself.
func (c Config) baseJSON() ([]byte, error) {
	b := bytes.TrimSpace(c.Base)
	switch b[0] {
	case '{':
		return b, nil
	case '"':
		var path string
		if err := json.Unmarshal(b, &path); err != nil {
			return nil, fmt.Errorf("base: %v", err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("base %s: cannot read it: %v", path, errors.Unwrap(err))
		}
		return raw, nil
	}
	return nil, errors.New("base: want a run config file name (a string) or an inline run config (an object)")
}

// sets returns the size's model keys as dotted overrides: those of its ladder
// config's model section, then its own.
func (s Size) sets() ([]string, error) {
	var out []string
	if s.Config != "" {
		raw, err := os.ReadFile(s.Config)
		if err != nil {
			return nil, fmt.Errorf("config %s: cannot read it: %v", s.Config, errors.Unwrap(err))
		}
		var file struct {
			Model map[string]json.RawMessage `json:"model"`
		}
		if err := json.Unmarshal(raw, &file); err != nil {
			return nil, fmt.Errorf("config %s: %v", s.Config, err)
		}
		if len(file.Model) == 0 {
			return nil, fmt.Errorf("config %s has no model section", s.Config)
		}
		out = modelSets(file.Model)
	}
	return append(out, modelSets(s.Model)...), nil
}

func modelSets(m map[string]json.RawMessage) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, "model."+k+"="+string(m[k]))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type budget struct {
	kind, label string
	value       float64
}

func (c Config) budgets() []budget {
	var out []budget
	add := func(kind string, vs []float64) {
		for _, v := range vs {
			label := strings.NewReplacer("e+0", "e", "e+", "e", "e-0", "e-").Replace(strconv.FormatFloat(v, 'g', -1, 64))
			if kind == "d" && v == math.Trunc(v) && v < 1e15 {
				label = strconv.FormatFloat(v, 'f', -1, 64) // token counts in full: d8388608
			}
			out = append(out, budget{kind: kind, label: kind + label, value: v})
		}
	}
	add("tpp", c.Budget.TokensPerParam)
	add("c", c.Budget.FLOPs)
	add("d", c.Budget.Tokens)
	return out
}

// split returns the overrides that make a step of seqs sequences of L tokens: one
// micro-batch of seqs, or, with MicroTokens, grad_accum micro-batches of the largest
// batch that divides seqs and holds at most MicroTokens tokens (one sequence at least).
func (c Config) split(seqs, L int) []string {
	b := seqs
	if c.MicroTokens > 0 {
		b = max(1, min(seqs, c.MicroTokens/L))
		for seqs%b != 0 {
			b--
		}
	}
	return []string{fmt.Sprintf("data.batch_size=%d", b), fmt.Sprintf("optim.grad_accum=%d", seqs/b)}
}
