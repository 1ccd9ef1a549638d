package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
)

// Config is a sweep: a base run config and the grid of runs made from it. It is
// decoded strictly from JSON (unknown keys and wrong types are errors).
type Config struct {
	// Base is the run config every run starts from: a file name (a string, relative
	// to the current directory) or an inline run config (an object).
	Base json.RawMessage `json:"base"`
	// Set holds dotted-key overrides applied to Base for every run, e.g.
	// {"data.eval_batches": 4}.
	Set map[string]json.RawMessage `json:"set"`

	Archs   []string `json:"archs"`    // values of model.arch; default ["mamba"]
	Sizes   []Size   `json:"sizes"`    // the model ladder
	Budget  Budget   `json:"budget"`   // training tokens of each size
	Seeds   []uint64 `json:"seeds"`    // run.seed values; default [1]
	SeqLens []int    `json:"seq_lens"` // data.seq_len values (context studies); default: the base's
	// TokensPerStep is batch_size × seq_len, held fixed across SeqLens
	// (batch_size = TokensPerStep / seq_len); default: the base's batch × seq_len.
	TokensPerStep int `json:"tokens_per_step"`
	// MicroTokens caps the tokens of one micro-batch: a step of tokens_per_step is
	// split into optim.grad_accum micro-batches of at most MicroTokens tokens (at
	// least one sequence each), which bounds the activation memory of long contexts
	// without changing the step. 0 = one micro-batch per step.
	MicroTokens int `json:"micro_tokens"`

	LR LR `json:"lr"`

	Evals          int     `json:"evals"`           // evaluations per run (run.eval_every = steps/evals); default 10
	Checkpoints    int     `json:"checkpoints"`     // checkpoints per run; default 4
	WarmupFraction float64 `json:"warmup_fraction"` // optim.warmup_steps = fraction × steps; default 0.1; -1 keeps the base's
}

// Size is one rung of the ladder: a ladder config file's model section and/or model
// overrides, plus overrides for particular archs.
type Size struct {
	Name   string                                `json:"name"`    // part of the run names: [a-z0-9.]+
	Config string                                `json:"config"`  // a run config file whose model section is used
	Model  map[string]json.RawMessage            `json:"model"`   // model keys, applied after Config
	ByArch map[string]map[string]json.RawMessage `json:"by_arch"` // arch → model keys, applied last
}

// Budget sets the training tokens D of each (arch, size, seq_len): exactly one of
// its lists is given, and each of its values makes one grid point.
type Budget struct {
	TokensPerParam []float64 `json:"tokens_per_param"` // D = ratio × N (non-embedding); default [20] (Chinchilla)
	FLOPs          []float64 `json:"flops"`            // IsoFLOP: D = C / FLOPs per token
	Tokens         []float64 `json:"tokens"`           // D fixed
	// MinSteps drops grid points of fewer optimizer steps (an IsoFLOP budget too
	// small for a large model); they are listed in the plan. Default 1.
	MinSteps int `json:"min_steps"`
	// MinTokensPerParam and MaxTokensPerParam (0 = no bound) drop grid points whose
	// D/N falls outside them: an IsoFLOP profile kept around its optimum.
	MinTokensPerParam float64 `json:"min_tokens_per_param"`
	MaxTokensPerParam float64 `json:"max_tokens_per_param"`
}

// LR chooses each run's peak learning rate.
type LR struct {
	// Rule is "paper" (default: PaperLR of the run's total parameters, the GPT-3
	// table × 5) or "base" (the base config's optim.lr for every size).
	Rule  string  `json:"rule"`
	Scale float64 `json:"scale"` // multiplies the rule's value; default 1
	// Search, when given, is a small learning-rate search that is part of the sweep:
	// for each (arch, size, seq_len), its first grid point (first budget kept, first
	// seed) is trained once per multiplier m of the rule's rate, and the multiplier
	// whose run ends with the lowest validation loss is used for every other grid
	// point of that (arch, size, seq_len). The winning run is the grid point's run.
	Search []float64 `json:"search"`
}

// Rules of LR.
const (
	RulePaper = "paper"
	RuleBase  = "base"
)

var nameRE = regexp.MustCompile(`^[a-z0-9.]+$`)

// ParseConfig decodes a sweep config strictly and fills the defaults. Errors name
// the offending key.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return c, fmt.Errorf("invalid JSON at line %d: %v", 1+bytes.Count(raw[:se.Offset], []byte("\n")), se)
		case errors.As(err, &te):
			return c, fmt.Errorf("key %q: want %s, got %s", te.Field, te.Type, te.Value)
		}
		return c, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return c, errors.New("invalid JSON: data after the top-level object")
	}
	if len(c.Archs) == 0 {
		c.Archs = []string{"mamba"}
	}
	if len(c.Seeds) == 0 {
		c.Seeds = []uint64{1}
	}
	b := &c.Budget
	if len(b.TokensPerParam)+len(b.FLOPs)+len(b.Tokens) == 0 {
		b.TokensPerParam = []float64{20}
	}
	if b.MinSteps == 0 {
		b.MinSteps = 1
	}
	if c.LR.Rule == "" {
		c.LR.Rule = RulePaper
	}
	if c.LR.Scale == 0 {
		c.LR.Scale = 1
	}
	if c.Evals == 0 {
		c.Evals = 10
	}
	if c.Checkpoints == 0 {
		c.Checkpoints = 4
	}
	if c.WarmupFraction == 0 {
		c.WarmupFraction = 0.1
	}
	return c, c.validate()
}

// LoadConfig reads and parses a sweep config file.
func LoadConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, fmt.Errorf("sweep config %s: file does not exist", path)
		}
		return Config{}, fmt.Errorf("sweep config %s: %w", path, err)
	}
	c, err := ParseConfig(raw)
	if err != nil {
		return Config{}, fmt.Errorf("sweep config %s: %w", path, err)
	}
	return c, nil
}

func (c Config) validate() error {
	if len(bytes.TrimSpace(c.Base)) == 0 {
		return errors.New("base: missing (a run config file name or an inline run config object)")
	}
	if len(c.Sizes) == 0 {
		return errors.New("sizes: at least one size is needed")
	}
	seen := map[string]bool{}
	for i, a := range c.Archs {
		if !nameRE.MatchString(a) || seen[a] {
			return fmt.Errorf("archs[%d]: %q is not a unique lower-case name", i, a)
		}
		seen[a] = true
	}
	names := map[string]bool{}
	for i, s := range c.Sizes {
		if !nameRE.MatchString(s.Name) || names[s.Name] {
			return fmt.Errorf("sizes[%d].name: %q is not a unique name of [a-z0-9.]", i, s.Name)
		}
		names[s.Name] = true
		if s.Config == "" && len(s.Model) == 0 {
			return fmt.Errorf("sizes[%d] (%s): give a ladder config file (config) or model overrides (model)", i, s.Name)
		}
		for a := range s.ByArch {
			if !seen[a] {
				return fmt.Errorf("sizes[%d].by_arch: arch %q is not in archs %v", i, a, c.Archs)
			}
		}
	}
	b := c.Budget
	lists := 0
	for _, l := range []struct {
		key string
		v   []float64
	}{{"tokens_per_param", b.TokensPerParam}, {"flops", b.FLOPs}, {"tokens", b.Tokens}} {
		if len(l.v) > 0 {
			lists++
		}
		for j, x := range l.v {
			if !(x > 0) || math.IsInf(x, 0) {
				return fmt.Errorf("budget.%s[%d]: must be a positive number, got %v", l.key, j, x)
			}
		}
		if dup := duplicate(l.v); dup >= 0 {
			return fmt.Errorf("budget.%s: %v appears twice", l.key, l.v[dup])
		}
	}
	if lists > 1 {
		return errors.New("budget: give exactly one of tokens_per_param, flops and tokens")
	}
	if b.MinTokensPerParam < 0 || b.MaxTokensPerParam < 0 || (b.MaxTokensPerParam > 0 && b.MaxTokensPerParam < b.MinTokensPerParam) {
		return fmt.Errorf("budget: min_tokens_per_param %v and max_tokens_per_param %v must be >= 0 and in order (0 = no bound)", b.MinTokensPerParam, b.MaxTokensPerParam)
	}
	if b.MinSteps < 1 {
		return fmt.Errorf("budget.min_steps must be >= 1, got %d", b.MinSteps)
	}
	if dup := duplicate(c.Seeds); dup >= 0 {
		return fmt.Errorf("seeds: %d appears twice", c.Seeds[dup])
	}
	for i, l := range c.SeqLens {
		if l < 2 {
			return fmt.Errorf("seq_lens[%d]: must be >= 2, got %d", i, l)
		}
		if c.TokensPerStep > 0 && c.TokensPerStep%l != 0 {
			return fmt.Errorf("seq_lens[%d]: %d does not divide tokens_per_step %d", i, l, c.TokensPerStep)
		}
	}
	if dup := duplicate(c.SeqLens); dup >= 0 {
		return fmt.Errorf("seq_lens: %d appears twice", c.SeqLens[dup])
	}
	switch {
	case c.TokensPerStep < 0:
		return fmt.Errorf("tokens_per_step must be positive, got %d", c.TokensPerStep)
	case c.MicroTokens < 0:
		return fmt.Errorf("micro_tokens must be positive (or 0: one micro-batch per step), got %d", c.MicroTokens)
	case c.LR.Rule != RulePaper && c.LR.Rule != RuleBase:
		return fmt.Errorf("lr.rule must be %q or %q, got %q", RulePaper, RuleBase, c.LR.Rule)
	case !(c.LR.Scale > 0) || math.IsInf(c.LR.Scale, 0):
		return fmt.Errorf("lr.scale must be a positive number, got %v", c.LR.Scale)
	case duplicate(c.LR.Search) >= 0:
		return fmt.Errorf("lr.search: %v appears twice", c.LR.Search[duplicate(c.LR.Search)])
	case slices.ContainsFunc(c.LR.Search, func(m float64) bool { return !(m > 0) || math.IsInf(m, 0) }):
		return fmt.Errorf("lr.search: multipliers must be positive numbers, got %v", c.LR.Search)
	case c.Evals < 1:
		return fmt.Errorf("evals must be >= 1, got %d", c.Evals)
	case c.Checkpoints < 1:
		return fmt.Errorf("checkpoints must be >= 1, got %d", c.Checkpoints)
	case c.WarmupFraction != -1 && !(c.WarmupFraction > 0 && c.WarmupFraction < 1):
		return fmt.Errorf("warmup_fraction must be in (0, 1), or -1 to keep the base's warmup, got %v", c.WarmupFraction)
	}
	return nil
}

// duplicate returns the index of the first value that appeared before, or -1.
func duplicate[T comparable](v []T) int {
	for i := range v {
		if slices.Index(v[:i], v[i]) >= 0 {
			return i
		}
	}
	return -1
}
