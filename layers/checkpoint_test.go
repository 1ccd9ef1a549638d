package layers

import (
	"encoding/json"
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
				if e := testutil.RelL2(q.Value, p.Value); !testutil.Within(e, tc.tol) {
					t.Errorf("%s: %s relative error %.3g > %g", tc.dtype, p.Name, e, tc.tol)
				}
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
