package layers

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/internal/testutil"
)

func smallModel(t *testing.T, edit func(*Config)) *Model {
	t.Helper()
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer, c.DState = 30, 16, 2, 4
	if edit != nil {
		edit(&c)
	}
	m, err := New(c, 11)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		dtype safetensors.DType
		tol   float64
	}{{safetensors.F32, 0}, {safetensors.F64, 0}, {safetensors.BF16, 1e-2}, {safetensors.F16, 1e-3}} {
		for _, lti := range []bool{false, true} {
			m := smallModel(t, func(c *Config) { c.Selective = !lti; c.Bias = lti })
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := m.SaveAs(dir, tc.dtype); err != nil {
				t.Fatal(err)
			}
			got, err := Load(dir)
			if err != nil {
				t.Fatalf("%s lti=%v: %v", tc.dtype, lti, err)
			}
			// The file keeps the padded vocabulary and the resolved rank.
			want := m.Config()
			want.VocabSize, want.DtRank = want.PaddedVocab(), want.Rank()
			if got.Config() != want {
				t.Errorf("%s: config\n got %+v\nwant %+v", tc.dtype, got.Config(), want)
			}
			for i, p := range m.Params() {
				q := got.Params()[i]
				if q.Name != p.Name || !slices.Equal(q.Shape, p.Shape) || q.NoDecay != p.NoDecay {
					t.Fatalf("%s: parameter %d is %s %v, want %s %v", tc.dtype, i, q.Name, q.Shape, p.Name, p.Shape)
				}
				testutil.Close(t, string(tc.dtype)+": "+p.Name, q.Value, p.Value, tc.tol)
			}
		}
	}
	entries, _ := os.ReadDir(t.TempDir())
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// writeCheckpoint writes a config (as a JSON map) and tensors into a new directory.
func writeCheckpoint(t *testing.T, cfg map[string]any, ts []safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkpointParts returns the fixture's HF config and m's tensors.
func checkpointParts(t *testing.T, m *Model) (map[string]any, []safetensors.Tensor) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "hf_shared_tiny", "config.json"))
	if err != nil {
		raw, _ = m.cfg.hfConfigJSON()
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	c := m.cfg
	cfg["hidden_size"], cfg["num_hidden_layers"], cfg["state_size"] = c.DModel, c.NLayer, c.DState
	cfg["vocab_size"], cfg["intermediate_size"], cfg["time_step_rank"] = c.PaddedVocab(), c.DInner(), "auto"
	var ts []safetensors.Tensor
	for _, p := range m.Params() {
		ts = append(ts, safetensors.Tensor{Name: p.Name, Shape: p.Shape, F32: p.Value})
	}
	return cfg, ts
}

func TestLoadAliasesAndTiedHead(t *testing.T) {
	m := smallModel(t, nil)
	cfg, ts := checkpointParts(t, m)
	ts[0].Name = "backbone.embedding.weight" // mamba_ssm's name
	// Fields of the released state-spaces/mamba-*-hf configs.
	cfg["fused_add_norm"], cfg["rms_norm"], cfg["n_layer"], cfg["pad_vocab_size_multiple"] = true, true, m.cfg.NLayer, 8
	ts = append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: m.emb.Shape, F32: m.emb.Value})
	got, err := Load(writeCheckpoint(t, cfg, ts))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.emb.Value, m.emb.Value) {
		t.Error("embedding not loaded from backbone.embedding.weight")
	}
}

func TestLoadErrors(t *testing.T) {
	m := smallModel(t, nil)
	// Config edits: a nil value deletes the field.
	for _, tc := range []struct {
		field string
		value any
		want  string
	}{
		{"hiden_size", 3, `unknown field "hiden_size"`},
		{"state_size", nil, `missing required field "state_size"`},
		{"expand", "two", `field "expand"`},
		{"time_step_rank", "big", "time_step_rank"},
		{"time_step_rank", 1e300, "time_step_rank 1e+300 is not a positive integer"},
		{"model_type", "llama", `model_type "llama"`},
		{"rms_norm", false, "rms_norm false"},
		{"n_layer", 5, "n_layer 5"},
		{"tie_word_embeddings", false, "tie_word_embeddings"},
		{"intermediate_size", 7, "intermediate_size 7"},
	} {
		cfg, ts := checkpointParts(t, m)
		cfg[tc.field] = tc.value
		if tc.value == nil {
			delete(cfg, tc.field)
		}
		_, err := Load(writeCheckpoint(t, cfg, ts))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %v: error %v, want one containing %q", tc.field, tc.value, err, tc.want)
		}
	}
	// Tensor edits.
	headless := slices.Clone(m.emb.Value)
	headless[0]++
	for _, tc := range []struct {
		name string
		edit func(ts []safetensors.Tensor) []safetensors.Tensor
		want string
	}{
		{"shape", func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts[2].Shape = []int{ts[2].Shape[1], ts[2].Shape[0]}
			return ts
		}, `tensor "` + m.params[2].Name + `" has shape`},
		{"missing tensor", func(ts []safetensors.Tensor) []safetensors.Tensor { return ts[1:] },
			`missing tensor "backbone.embeddings.weight"`},
		{"extra tensor", func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "backbone.layers.9.mixer.D", Shape: []int{1}, F32: []float32{1}})
		}, `unexpected tensor "backbone.layers.9.mixer.D"`},
		{"untied head", func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: ts[0].Shape, F32: headless})
		}, "lm_head.weight"},
	} {
		cfg, ts := checkpointParts(t, m)
		_, err := Load(writeCheckpoint(t, cfg, tc.edit(ts)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("empty directory: error %v", err)
	}
}

// A null required field used to dereference nil; repeated fields and data
// after the object were silently accepted; NaN and Inf weights loaded.
func TestLoadRefusesNullsAndNonFinite(t *testing.T) {
	m := smallModel(t, nil)
	for _, field := range hfRequired {
		cfg, ts := checkpointParts(t, m)
		cfg[field] = nil
		_, err := Load(writeCheckpoint(t, cfg, ts))
		if err == nil || !strings.Contains(err.Error(), `required field "`+field+`" is null`) {
			t.Errorf("%s: null: error %v", field, err)
		}
	}
	cfg, ts := checkpointParts(t, m)
	cfg["num_hidden_layers"], cfg["n_layer"] = 1000000000, nil
	if _, err := Load(writeCheckpoint(t, cfg, ts)); err == nil || !strings.Contains(err.Error(), "num_hidden_layers 1000000000 is more than") {
		t.Errorf("10^9 layers: error %v", err)
	}
	cfg, ts = checkpointParts(t, m)
	cfg["time_step_min"], cfg["residual_in_fp32"] = nil, nil // optional: null is the default
	if _, err := Load(writeCheckpoint(t, cfg, ts)); err != nil {
		t.Errorf("null optional fields: %v", err)
	}
	good, _ := json.Marshal(cfg)
	for name, raw := range map[string]string{
		"repeated field": `{"hidden_size": 4, ` + string(good[1:]),
		"trailing data":  string(good) + "}",
	} {
		dir := writeCheckpoint(t, cfg, ts)
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(raw), 0o644)
		if _, err := Load(dir); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v", name, err)
		}
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		cfg, ts := checkpointParts(t, m)
		v := slices.Clone(ts[3].F32)
		v[len(v)-1] = bad
		ts[3].F32 = v
		_, err := Load(writeCheckpoint(t, cfg, ts))
		if err == nil || !strings.Contains(err.Error(), `tensor "`+ts[3].Name+`" holds`) {
			t.Errorf("%v in %s: error %v", bad, ts[3].Name, err)
		}
	}
}

// FuzzParseHFConfig feeds arbitrary config.json files to the transformers
// config parser. Nothing may panic; errors are one line; an accepted config
// validates and survives a write and re-read as the same network (a rank left to
// "auto" comes back spelled out).
func FuzzParseHFConfig(f *testing.F) {
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer, c.DState = 30, 16, 2, 4
	good, err := c.hfConfigJSON()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	if fixture, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "hf_shared_tiny", "config.json")); err == nil {
		f.Add(fixture)
	}
	for _, field := range hfRequired {
		f.Add(bytes.Replace(good, []byte(`"`+field+`": `), []byte(`"`+field+`": null, "x`+field+`": `), 1))
	}
	f.Add([]byte(`{"hidden_size": 16, "hidden_size": 16}`))
	f.Add(append(slices.Clone(good), " x"...))
	f.Add([]byte(`{"model_type": "mamba", "hidden_size": 1e300, "num_hidden_layers": -1, "state_size": 0, "expand": 2, "conv_kernel": 4, "vocab_size": 8, "time_step_rank": 0.5}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkHFRoundTrip(t, raw, parseHFConfig, Config.hfConfigJSON)
	})
}
