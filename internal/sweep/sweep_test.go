package sweep

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
	"github.com/mambago/mamba/train"
)

const tinyBase = `{"model": {"vocab_size": 16, "d_state": 4},
  "data": {"task": "selective_copying", "vocab": 16, "tokens": 2, "seq_len": 32, "batch_size": 4, "eval_batches": 2},
  "run": {"log_every": 5}}`

func parse(t *testing.T, raw string) Config {
	t.Helper()
	c, err := ParseConfig([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPaperLR(t *testing.T) {
	for _, c := range []struct{ n, want float64 }{
		{2e4, 3e-3}, {125e6, 3e-3}, {350e6, 1.5e-3}, {760e6, 1.25e-3}, {1.3e9, 1e-3}, {1e12, 3e-4},
	} {
		testutil.CheckErr(t, "PaperLR", math.Abs(PaperLR(c.n)-c.want)/c.want, 1e-12)
	}
	// Between table rows: log-log interpolation, so the geometric mean of sizes gets
	// the geometric mean of rates.
	mid := math.Sqrt(125e6 * 350e6)
	testutil.CheckErr(t, "PaperLR between rows", math.Abs(PaperLR(mid)-math.Sqrt(3e-3*1.5e-3))/PaperLR(mid), 1e-12)
}

func TestPlanGrid(t *testing.T) {
	c := parse(t, `{"base": `+tinyBase+`,
	  "sizes": [{"name": "a", "model": {"d_model": 8, "n_layer": 1}}, {"name": "b", "model": {"d_model": 16, "n_layer": 2}}],
	  "budget": {"tokens_per_param": [2, 4]}, "seeds": [1, 2], "evals": 4, "checkpoints": 2}`)
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Points) != 8 {
		t.Fatalf("%d points, want 2 sizes × 2 budgets × 2 seeds", len(p.Points))
	}
	want := []string{"mamba-a-tpp2-s1", "mamba-a-tpp2-s2", "mamba-a-tpp4-s1", "mamba-a-tpp4-s2", "mamba-b-tpp2-s1"}
	for i, w := range want {
		if p.Points[i].Name != w {
			t.Errorf("point %d is %s, want %s", i, p.Points[i].Name, w)
		}
	}
	for _, pt := range p.Points {
		m := pt.Config.Model
		ratio := map[string]float64{"tpp2": 2, "tpp4": 4}[pt.Budget]
		wantSteps := int(math.Round(ratio * float64(pt.NonEmbedding) / 128))
		if pt.Params != m.NumParams() || pt.NonEmbedding != m.NumParams()-m.PaddedVocab()*m.DModel || pt.Steps != wantSteps ||
			pt.Config.Run.MaxSteps != pt.Steps || pt.Config.Run.Seed != pt.Seed || pt.Config.Optim.LR != 3e-3 ||
			pt.Config.Run.EvalEvery != max(1, pt.Steps/4) || pt.Config.Run.CheckpointEvery != max(1, pt.Steps/2) ||
			pt.Config.Optim.WarmupSteps != int(math.Round(0.1*float64(pt.Steps))) || pt.FLOPsPerToken != m.FLOPsPerToken(32) {
			t.Errorf("point %s: %d params (%d non-embedding), %d steps, run %+v, lr %v, warmup %d", pt.Name, pt.Params, pt.NonEmbedding, pt.Steps, pt.Config.Run, pt.Config.Optim.LR, pt.Config.Optim.WarmupSteps)
		}
	}
	// The plan is a pure function of the config.
	q, _ := c.Plan()
	for i := range p.Points {
		if string(p.Points[i].JSON) != string(q.Points[i].JSON) {
			t.Fatalf("two plans differ at %s", p.Points[i].Name)
		}
	}
}

func TestPlanIsoFLOPAndContext(t *testing.T) {
	c := parse(t, `{"base": `+tinyBase+`, "sizes": [{"name": "a", "model": {"d_model": 8, "n_layer": 1}}],
	  "budget": {"flops": [1e9, 1e6], "min_steps": 5}, "seq_lens": [16, 64], "tokens_per_step": 256, "lr": {"rule": "base", "scale": 2}}`)
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Points) != 2 || len(p.Dropped) != 2 || !strings.HasPrefix(p.Dropped[0], "mamba-a-c1e6-L16-s1") {
		t.Fatalf("points %d, dropped %v; want the 1e6 budget dropped at both lengths", len(p.Points), p.Dropped)
	}
	for _, pt := range p.Points {
		d := pt.Config.Data
		if d.BatchSize*d.SeqLen != 256 || pt.TokensPerStep != 256 || pt.Config.Optim.LR != 2*3e-3 {
			t.Errorf("%s: batch %d × seq_len %d, lr %v", pt.Name, d.BatchSize, d.SeqLen, pt.Config.Optim.LR)
		}
		testutil.CheckErr(t, "IsoFLOP compute", math.Abs(pt.FLOPs()-1e9)/1e9, 0.5*256*pt.FLOPsPerToken/1e9)
	}
	if p.Points[0].Name != "mamba-a-c1e9-L16-s1" || p.Points[1].Name != "mamba-a-c1e9-L64-s1" {
		t.Errorf("names %s, %s", p.Points[0].Name, p.Points[1].Name)
	}
}

// TestPlanMicroTokens: micro_tokens splits a step into micro-batches of at most that many
// tokens (at least one sequence), keeping the tokens per step.
func TestPlanMicroTokens(t *testing.T) {
	c := parse(t, `{"base": `+tinyBase+`, "sizes": [{"name": "a", "model": {"d_model": 8, "n_layer": 1}}],
	  "budget": {"tokens": [4096]}, "seq_lens": [16, 64, 256], "tokens_per_step": 256, "micro_tokens": 64}`)
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][2]int{16: {4, 4}, 64: {1, 4}, 256: {1, 1}} // seq_len → batch, grad_accum
	for _, pt := range p.Points {
		d, o := pt.Config.Data, pt.Config.Optim
		if w := want[d.SeqLen]; d.BatchSize != w[0] || o.GradAccum != w[1] || pt.TokensPerStep != 256 {
			t.Errorf("%s: batch %d × accum %d (%d tokens per step), want %d × %d (256)", pt.Name, d.BatchSize, o.GradAccum, pt.TokensPerStep, w[0], w[1])
		}
	}
}

func TestSizeFromLadderConfig(t *testing.T) {
	c := parse(t, `{"base": `+tinyBase+`, "sizes": [{"name": "l", "config": "../../configs/mamba-0.1m.json", "model": {"vocab_size": 16}}]}`)
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Points[0].Config.Model; m.DModel != 64 || m.NLayer != 3 || m.VocabSize != 16 {
		t.Errorf("model %+v: want the ladder's d_model 64, 3 layers, with vocab_size 16 from the size", m)
	}
}

// Bad sweep configs give one error naming the key.
func TestBadConfigs(t *testing.T) {
	size := `"sizes": [{"name": "a", "model": {"d_model": 8}}]`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shards.json"), []byte(`{"data": {"task": "shards", "train": "`+dir+`/none.tok", "valid": "`+dir+`/none.tok"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ raw, want string }{
		{`{"base": ` + tinyBase + `, ` + size + `, "budgett": {}}`, `unknown field "budgett"`},
		{`{"base": ` + tinyBase + `, ` + size + `, "seeds": ["x"]}`, `key "seeds"`},
		{`{"base": ` + tinyBase + `, ` + size + `,}`, "invalid JSON at line"},
		{`{` + size + `}`, "base: missing"},
		{`{"base": ` + tinyBase + `}`, "sizes: at least one"},
		{`{"base": ` + tinyBase + `, "sizes": [{"name": "A", "model": {"d_model": 8}}]}`, "sizes[0].name"},
		{`{"base": ` + tinyBase + `, "sizes": [{"name": "a"}]}`, "give a ladder config file"},
		{`{"base": ` + tinyBase + `, ` + size + `, "budget": {"flops": [1e9], "tokens": [1e5]}}`, "exactly one of"},
		{`{"base": ` + tinyBase + `, ` + size + `, "budget": {"tokens_per_param": [-1]}}`, "budget.tokens_per_param[0]"},
		{`{"base": ` + tinyBase + `, ` + size + `, "seeds": [1, 1]}`, "seeds: 1 appears twice"},
		{`{"base": ` + tinyBase + `, ` + size + `, "seq_lens": [48], "tokens_per_step": 256}`, "does not divide"},
		{`{"base": ` + tinyBase + `, ` + size + `, "lr": {"rule": "fast"}}`, "lr.rule"},
		{`{"base": ` + tinyBase + `, "archs": ["mamba"], "sizes": [{"name": "a", "model": {"d_model": 8}, "by_arch": {"transformer": {"n_layer": 1}}}]}`, `arch "transformer" is not in archs`},
		{`{"base": ` + tinyBase + `, ` + size + `, "warmup_fraction": 2}`, "warmup_fraction"},
		{`{"base": ` + tinyBase + `, ` + size + `, "lr": {"search": [1, 1]}}`, "lr.search: 1 appears twice"},
		{`{"base": ` + tinyBase + `, ` + size + `, "lr": {"search": [0, 1]}}`, "lr.search: multipliers must be positive"},
	} {
		if _, err := ParseConfig([]byte(c.raw)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.raw, err, c.want)
		}
	}
	// Errors found when resolving the runs.
	for _, c := range []struct{ raw, want string }{
		{`{"base": ` + tinyBase + `, "sizes": [{"name": "a", "model": {"d_modl": 8}}]}`, `unknown key "model.d_modl"`},
		{`{"base": "no/such/file.json", ` + size + `}`, "base no/such/file.json: cannot read it"},
		{`{"base": ` + tinyBase + `, "set": {"run.max_steps": "many"}, ` + size + `}`, "base with set"},
		{`{"base": ` + tinyBase + `, ` + size + `, "budget": {"tokens": [10]}}`, "no run is left"},
		{`{"base": ` + tinyBase + `, ` + size + `, "budget": {"tokens": [1e5], "max_tokens_per_param": 10}}`, "tokens per parameter > budget.max_tokens_per_param 10"},
	} {
		cfg, err := ParseConfig([]byte(c.raw))
		if err == nil {
			_, err = cfg.Plan()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.raw, err, c.want)
		}
	}
	c := parse(t, `{"base": "`+dir+`/shards.json", `+size+`}`)
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckData(); err == nil || !strings.Contains(err.Error(), "does not exist: make it with `train prepare`") {
		t.Errorf("missing shards: err = %v", err)
	}
}

// Every sweep config of configs/sweeps decodes and plans (data files are not needed
// to plan).
func TestSweepConfigsPlan(t *testing.T) {
	t.Chdir("../..") // base and ladder paths are relative to the repository root
	files, _ := filepath.Glob("configs/sweeps/*.json")
	if len(files) < 4 {
		t.Fatalf("%d sweep configs", len(files))
	}
	for _, f := range files {
		c, err := LoadConfig(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		p, err := c.Plan()
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if filepath.Base(f) == "text-bytes.json" {
			// Both archs; for each, at least 5 sizes from about 20k to at least 1M
			// non-embedding parameters, several budgets each, and about 1e14 FLOPs.
			for _, arch := range []string{"mamba", "transformer"} {
				sizes := map[string]int{}
				lo, hi, flops := math.Inf(1), 0.0, 0.0
				for _, pt := range p.Points {
					if pt.Arch == arch {
						sizes[pt.Size]++
						lo, hi = min(lo, float64(pt.NonEmbedding)), max(hi, float64(pt.NonEmbedding))
						flops += pt.FLOPs()
					}
				}
				if len(sizes) < 5 || lo > 25e3 || hi < 1e6 || flops < 0.5e14 || flops > 1.5e14 {
					t.Errorf("text-bytes, %s: %d sizes, N from %g to %g, %.3g FLOPs", arch, len(sizes), lo, hi, flops)
				}
			}
		}
	}
}

// With lr.search, each (arch, size) first trains its first grid point at every
// multiplier; Resolve gives the others the multiplier of the lowest final loss.
func TestPlanLRSearch(t *testing.T) {
	c := parse(t, `{"base": `+tinyBase+`, "sizes": [{"name": "a", "model": {"d_model": 8, "n_layer": 1}}],
	  "budget": {"tokens_per_param": [2, 4]}, "seeds": [1, 2], "lr": {"search": [0.5, 1, 2]}}`)
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pt := range p.Points {
		names = append(names, pt.Name)
	}
	want := []string{"mamba-a-tpp2-s1-lrx0.5", "mamba-a-tpp2-s1-lrx1", "mamba-a-tpp2-s1-lrx2", "mamba-a-tpp2-s2", "mamba-a-tpp4-s1", "mamba-a-tpp4-s2"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("points %v, want %v", names, want)
	}
	for i, pt := range p.Points {
		if search := i < 3; pt.Searching != search || pt.Resolved() != search || (search && pt.Config.Optim.LR != 3e-3*pt.LRMult) {
			t.Errorf("%s: searching %v, resolved %v, lr %v", pt.Name, pt.Searching, pt.Resolved(), pt.Config.Optim.LR)
		}
	}
	out := t.TempDir()
	finish := func(pt Point, loss float64) {
		s := train.RunSummary{Finished: true, ConfigSHA256: configHash(pt.JSON), FinalValLoss: &loss}
		b, _ := json.Marshal(s)
		if err := os.MkdirAll(filepath.Join(out, pt.Name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, pt.Name, train.SummaryFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	finish(p.Points[0], 2.0)
	finish(p.Points[2], 1.5)
	if err := p.Resolve(out); err != nil || p.Points[3].Resolved() {
		t.Fatalf("resolved before the search finished (%v)", err)
	}
	finish(p.Points[1], 1.7)
	if err := p.Resolve(out); err != nil {
		t.Fatal(err)
	}
	for _, pt := range p.Points[3:] {
		if !pt.Resolved() || pt.LRMult != 2 || pt.Config.Optim.LR != 6e-3 {
			t.Errorf("%s: resolved %v, multiplier %v, lr %v; want the winner's 2 (6e-3)", pt.Name, pt.Resolved(), pt.LRMult, pt.Config.Optim.LR)
		}
	}
	if p.Chosen["mamba-a"] != 2 || p.InGrid(p.Points[0]) || !p.InGrid(p.Points[2]) || !p.InGrid(p.Points[4]) {
		t.Errorf("chosen %v", p.Chosen)
	}
}
