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
		{"trailing", `{} {}`, nil, "after the top-level object"},
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
