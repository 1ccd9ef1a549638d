package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultConfigValidates(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	c, err := ParseConfig([]byte(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.JSON()) != string(DefaultConfig().JSON()) {
		t.Errorf("empty config does not resolve to the defaults:\n%s\n%s", c.JSON(), DefaultConfig().JSON())
	}
}

func TestRequiredKeysExist(t *testing.T) {
	for _, key := range []string{"run.max_steps", "run.checkpoint_every", "run.eval_every", "run.log_every",
		"run.seed", "optim.lr", "data.batch_size", "data.seq_len"} {
		if _, err := ParseConfig([]byte(`{}`), []string{key + "=7"}); err != nil {
			t.Errorf("--set %s=7: %v", key, err)
		}
	}
}

func TestOverridesApplyWithTypes(t *testing.T) {
	c, err := ParseConfig([]byte(`{"optim": {"lr": 0.01}, "run": {"max_steps": 50}}`), []string{
		"optim.lr=2e-3", "run.max_steps=70", "model.conv_bias=false", "data.task=induction_heads",
		`run.freeze=["backbone.embeddings.*"]`, "run.seed=9",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Optim.LR != 2e-3 || c.Run.MaxSteps != 70 || c.Model.ConvBias || c.Data.Task != TaskInductionHeads ||
		len(c.Run.Freeze) != 1 || c.Run.Seed != 9 {
		t.Errorf("overrides not applied: %s", c.JSON())
	}
	if c.Optim.Beta2 != 0.95 || c.Model.DState != 16 {
		t.Errorf("defaults lost: %s", c.JSON())
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		sets      []string
		want      string
	}{
		{"unknown top", `{"optimizer": {}}`, nil, `unknown key "optimizer"`},
		{"unknown nested", `{"optim": {"learning_rate": 1}}`, nil, `unknown key "optim.learning_rate"`},
		{"unknown model", `{"model": {"hidden_size": 1}}`, nil, `unknown key "model.hidden_size"`},
		{"unknown via set", `{}`, []string{"run.max_step=3"}, `unknown key "run.max_step"`},
		{"wrong type", `{"run": {"max_steps": "ten"}}`, nil, `key "run.max_steps": want an integer, got string`},
		{"wrong type via set", `{}`, []string{"run.max_steps=abc"}, `key "run.max_steps"`},
		{"fraction for int", `{"data": {"batch_size": 1.5}}`, nil, `key "data.batch_size"`},
		{"section not object", `{"run": 3}`, nil, `key "run"`},
		{"set through value", `{"optim": {"lr": 1}}`, []string{"optim.lr.x=1"}, `"optim.lr" is not a section`},
		{"set without =", `{}`, []string{"optim.lr"}, `want key=value`},
		{"syntax", "{\n\"run\": {\n\"max_steps\": 3,\n}}", nil, "invalid JSON at line 4"},
		{"not object", `[1]`, nil, "must be an object"},
		{"trailing", `{} {}`, nil, "data after the top-level value"},
		{"trailing word", `{"run": {"max_steps": 5}} x`, nil, "data after the top-level value"},
		{"extra brace", `{"run": {"max_steps": 5}}}`, nil, "data after the top-level value"},
		{"duplicate key", `{"run": {"max_steps": 5, "max_steps": 6}}`, nil, `duplicate key "run.max_steps"`},
		{"repeated section", `{"optim": {"lr": 1e-3}, "run": {}, "optim": {"beta2": 0.99}}`, nil, `duplicate key "optim"`},
		{"null value", `{"data": {"train": null}}`, nil, `key "data.train" is null`},
		{"null section", `{"optim": null}`, nil, `key "optim" is null`},
		{"null in a list", `{"run": {"freeze": ["a", null]}}`, nil, `key "run.freeze[1]" is null`},
		{"null via set", `{}`, []string{"data.valid=null"}, `override "data.valid=null": null is not a value`},
		{"null list via set", `{}`, []string{"run.freeze=[null]"}, "null is not a value (at [0])"},
		{"broken list via set", `{}`, []string{"run.freeze=[backbone.*]"}, "the value is not valid JSON"},
		{"warmup beyond a short run", `{"optim": {"warmup_steps": 200}}`, []string{"run.max_steps=10"}, "--set optim.warmup_steps=1"},
		{"wsd beyond a short run", `{"optim": {"schedule": "wsd", "warmup_steps": 5, "decay_steps": 20}}`, []string{"run.max_steps=20"}, "--set optim.warmup_steps=2 --set optim.decay_steps=4"},
		{"invalid value", `{"run": {"max_steps": 0}}`, nil, "run.max_steps must be >= 1"},
		{"invalid optim", `{"optim": {"beta2": 1.5}}`, nil, "optim.beta2"},
		{"invalid model", `{"model": {"d_model": 0}}`, nil, "d_model"},
		{"bad task", `{"data": {"task": "copy"}}`, nil, "data.task"},
		{"shards need paths", `{"data": {"task": "shards"}}`, nil, "data.train and data.valid"},
		{"warmup too long", `{"optim": {"warmup_steps": 5000}}`, nil, "optim.warmup_steps"},
		{"bad freeze", `{"run": {"freeze": ["[x"]}}`, nil, "run.freeze"},
	} {
		_, err := ParseConfig([]byte(tc.raw), tc.sets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want one containing %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", tc.name, err)
		}
	}
}

// The suggested --set of a too-long warmup makes a valid config: shortening
// configs/text.json to 10 steps takes the two overrides the error names.
func TestShorteningAConfigSaysWhatToSet(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "configs", "text.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseConfig(raw, []string{"run.max_steps=10"})
	if err == nil {
		t.Fatal("text.json with run.max_steps=10 validated; its warmup is 200 steps")
	}
	_, fix, ok := strings.Cut(err.Error(), "--set ")
	if !ok {
		t.Fatalf("error %q names no --set", err)
	}
	if _, err := ParseConfig(raw, []string{"run.max_steps=10", fix}); err != nil {
		t.Errorf("with the suggested --set %s: %v", fix, err)
	}
}

// A config round-trips through its JSON (the form stored in checkpoints),
// including an empty run.freeze, which must not be stored as null.
func TestConfigJSONRoundTrips(t *testing.T) {
	edited := DefaultConfig()
	edited.Run.Freeze, edited.Data.Verify = []string{"backbone.layers.0.*"}, false
	for _, c := range []Config{DefaultConfig(), edited} {
		got, err := ParseConfig(c.JSON(), nil)
		if err != nil {
			t.Fatalf("ParseConfig(%s): %v", c.JSON(), err)
		}
		if string(got.JSON()) != string(c.JSON()) {
			t.Errorf("round trip changed the config:\n%s\n%s", c.JSON(), got.JSON())
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.json"), nil)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("LoadConfig(missing) = %v, want 'does not exist'", err)
	}
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"run": {"max_steps": 5}}`), 0o644)
	c, err := LoadConfig(p, []string{"run.log_every=2"})
	if err != nil || c.Run.MaxSteps != 5 || c.Run.LogEvery != 2 {
		t.Errorf("LoadConfig = %+v, %v", c.Run, err)
	}
}

// FuzzParseConfig feeds arbitrary files and one --set override to the config
// decoder. Nothing may panic; errors are one line; an accepted config is
// valid and reads back from its own JSON unchanged.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []struct{ raw, set string }{
		{`{}`, "run.max_steps=10"},
		{`{"model": {"d_model": 32}, "optim": {"lr": 1e-3}}`, "optim.warmup_steps=0"},
		{`{"run": {"max_steps": 5}} x`, ""},
		{`{"run": {"max_steps": 5}}}`, ""},
		{`{"run": {"seed": 1, "seed": 2}}`, ""},
		{`{"optim": {"lr": 1e-3}, "optim": {}}`, ""},
		{`{"data": {"train": null}}`, ""},
		{`{}`, "data.train=null"},
		{`{}`, `run.freeze=["backbone.*"]`},
		{`{}`, "run.freeze=[backbone.*]"},
		{`{"optim": {"warmup_steps": 200}}`, "run.max_steps=10"},
		{`{"data": {"task": "shards", "train": "a.tok", "valid": "b.tok", "verify": false}}`, "data.seq_len=2"},
		{`{"run": {"freeze": ["[x"]}}`, "model.n_layer=1e30"},
	} {
		f.Add(seed.raw, seed.set)
	}
	f.Fuzz(func(t *testing.T, raw, set string) {
		var sets []string
		if set != "" {
			sets = []string{set}
		}
		c, err := ParseConfig([]byte(raw), sets)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		back, err := ParseConfig(c.JSON(), nil)
		if err != nil || string(back.JSON()) != string(c.JSON()) {
			t.Fatalf("config does not round-trip: %v\n%s\n%s", err, c.JSON(), back.JSON())
		}
	})
}
