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

// llamaConfigs are small configs covering the hidden fixture shapes: grouped heads, an untied
// head, another θ and ε, a vocabulary that is not a multiple of 8, an explicit head size.
var llamaConfigs = []Config{
	transformer(func(c *Config) {
		c.VocabSize, c.DModel, c.NLayer, c.NHead, c.DFF, c.RopeTheta, c.NormEps, c.InitStd = 64, 32, 2, 4, 88, 10000, 1e-5, 0.02
	}),
	transformer(func(c *Config) {
		c.VocabSize, c.DModel, c.NLayer, c.NHead, c.NKVHead, c.DFF, c.RopeTheta, c.NormEps = 61, 48, 3, 6, 2, 128, 500000, 1e-6
		c.TieEmbeddings, c.PadVocabMultiple = false, 1
	}),
	transformer(func(c *Config) {
		c.VocabSize, c.DModel, c.NLayer, c.NHead, c.NKVHead, c.HeadDim, c.RopeTheta, c.InitStd = 40, 24, 1, 2, 1, 16, 1e6, 0.05
	}),
}

// transformer is DefaultConfig with arch "transformer", edited.
func transformer(edit func(c *Config)) Config {
	c := DefaultConfig()
	c.Arch = ArchTransformer
	edit(&c)
	return c
}

func newLlama(t *testing.T, c Config) *Llama {
	t.Helper()
	m, err := NewLlama(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLlamaLayout: names and shapes are transformers' state dict, and NumParams counts them.
func TestLlamaLayout(t *testing.T) {
	m := newLlama(t, llamaConfigs[1])
	want := map[string][]int{
		"model.embed_tokens.weight":                      {61, 48},
		"model.layers.2.input_layernorm.weight":          {48},
		"model.layers.2.self_attn.q_proj.weight":         {48, 48},
		"model.layers.2.self_attn.k_proj.weight":         {16, 48},
		"model.layers.2.self_attn.v_proj.weight":         {16, 48},
		"model.layers.2.self_attn.o_proj.weight":         {48, 48},
		"model.layers.2.post_attention_layernorm.weight": {48},
		"model.layers.2.mlp.gate_proj.weight":            {128, 48},
		"model.layers.2.mlp.up_proj.weight":              {128, 48},
		"model.layers.2.mlp.down_proj.weight":            {48, 128},
		"model.norm.weight":                              {48},
		"lm_head.weight":                                 {61, 48},
	}
	n := 0
	for _, p := range m.Params() {
		n += p.Size()
		if s, ok := want[p.Name]; ok && !slices.Equal(s, p.Shape) {
			t.Errorf("%s has shape %v, want %v", p.Name, p.Shape, s)
		}
		delete(want, p.Name)
	}
	for name := range want {
		t.Errorf("no parameter %s", name)
	}
	// per layer 2·D (norms) + D·(H + 2·Hkv)·hd + H·hd·D + 3·D·F; embedding, norm, head
	perLayer := 2*48 + 48*(48+2*16) + 48*48 + 3*48*128
	if got, w := m.cfg.NumParams(), 3*perLayer+61*48+48+61*48; got != w || n != w {
		t.Errorf("NumParams = %d (sum %d), want %d", got, n, w)
	}
	if got := len(newLlama(t, llamaConfigs[0]).Params()); got != 1+2*9+1 {
		t.Errorf("a tied model has %d parameters, want %d (no lm_head)", got, 1+2*9+1)
	}
}

// TestLlamaInit: weights ~ N(0, init_std²), norms 1, the same for the same seed and a different
// stream per parameter.
func TestLlamaInit(t *testing.T) {
	c := transformer(func(*Config) {})
	m := newLlama(t, c)
	for _, p := range m.Params() {
		if p.NoDecay {
			for _, v := range p.Value {
				if v != 1 {
					t.Fatalf("%s holds %v, want 1", p.Name, v)
				}
			}
			continue
		}
		var s, ss float64
		for _, v := range p.Value {
			s += float64(v)
			ss += float64(v) * float64(v)
		}
		n := float64(len(p.Value))
		mean, std := s/n, math.Sqrt(ss/n-(s/n)*(s/n))
		testutil.CheckErr(t, p.Name+" |mean|", math.Abs(mean), 5*0.02/math.Sqrt(n))
		testutil.CheckErr(t, p.Name+" |std/0.02 − 1|", math.Abs(std/0.02-1), 0.05)
	}
	again := newLlama(t, c)
	for i, p := range m.Params() {
		if !slices.Equal(p.Value, again.Params()[i].Value) {
			t.Errorf("%s differs between two models of the same seed", p.Name)
		}
	}
	q, k := m.blocks[0].q.Value, m.blocks[0].k.Value
	if slices.Equal(q[:64], k[:64]) {
		t.Error("q_proj and k_proj drew the same values")
	}
}

// TestLlamaSaveLoadRoundTrip: Save then LoadLlama gives the config and the weights back (within
// the storage type's rounding), for every config and dtype; no temporary file is left.
func TestLlamaSaveLoadRoundTrip(t *testing.T) {
	for _, c := range llamaConfigs {
		m := newLlama(t, c)
		for _, tc := range []struct {
			dtype safetensors.DType
			tol   float64
		}{{safetensors.F32, 0}, {safetensors.F64, 0}, {safetensors.BF16, 1e-2}, {safetensors.F16, 1e-3}} {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := m.SaveAs(dir, tc.dtype); err != nil {
				t.Fatal(err)
			}
			got, err := LoadLlama(dir)
			if err != nil {
				t.Fatalf("%s: %v", tc.dtype, err)
			}
			want := c
			want.NKVHead, want.HeadDim, want.DFF = c.KVHeads(), c.HeadSize(), c.FF()
			if got.Config() != want {
				t.Errorf("%s: config\n got %+v\nwant %+v", tc.dtype, got.Config(), want)
			}
			for i, p := range m.Params() {
				q := got.Params()[i]
				if q.Name != p.Name || !slices.Equal(q.Shape, p.Shape) || q.NoDecay != p.NoDecay {
					t.Fatalf("%s: parameter %d is %s %v, want %s %v", tc.dtype, i, q.Name, q.Shape, p.Name, p.Shape)
				}
				testutil.Close(t, string(tc.dtype)+" "+p.Name, q.Value, p.Value, tc.tol)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp") {
					t.Errorf("temporary file left behind: %s", e.Name())
				}
			}
		}
	}
}

// llamaCheckpoint returns m's config.json as a map and its tensors.
func llamaCheckpoint(t *testing.T, m *Llama) (map[string]any, []safetensors.Tensor) {
	t.Helper()
	raw, err := m.cfg.llamaHFConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, p := range m.Params() {
		ts = append(ts, safetensors.Tensor{Name: p.Name, Shape: p.Shape, F32: p.Value})
	}
	return cfg, ts
}

// TestLlamaHFConfigVersions: transformers 4 configs (top-level rope_theta, torch_dtype,
// rope_scaling null) and 5 configs (rope_parameters) load alike; absent optional fields take
// transformers' defaults; a tied head stored anyway is accepted when it is the embedding.
func TestLlamaHFConfigVersions(t *testing.T) {
	m := newLlama(t, llamaConfigs[0])
	cfg, ts := llamaCheckpoint(t, m)
	delete(cfg, "rope_parameters")
	delete(cfg, "head_dim")
	cfg["rope_scaling"], cfg["torch_dtype"], cfg["num_key_value_heads"], cfg["pad_token_id"] = nil, "float32", nil, nil
	ts = append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: m.emb.Shape, F32: m.emb.Value})
	got, err := LoadLlama(writeCheckpoint(t, cfg, ts))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Config(); c.RopeTheta != 10000 || c.KVHeads() != 4 || c.HeadSize() != 8 {
		t.Errorf("transformers 4 config read as %+v", c)
	}
	cfg, ts = llamaCheckpoint(t, m)
	for _, k := range []string{"rope_theta", "rms_norm_eps", "tie_word_embeddings", "initializer_range", "attention_bias", "mlp_bias", "hidden_act"} {
		delete(cfg, k)
	}
	cfg["rope_parameters"] = map[string]any{"rope_theta": 20000.0}
	ts = append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: m.emb.Shape, F32: m.emb.Value})
	got, err = LoadLlama(writeCheckpoint(t, cfg, ts))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Config(); c.RopeTheta != 20000 || c.NormEps != 1e-6 || c.TieEmbeddings || c.InitStd != 0.02 {
		t.Errorf("defaults of a sparse transformers 5 config: %+v", c)
	}
}

// TestLlamaLoadErrors: every config or tensor a Llama here cannot be is refused, naming the field
// or tensor.
func TestLlamaLoadErrors(t *testing.T) {
	m := newLlama(t, llamaConfigs[1])
	// Config edits: a nil value deletes the field; null is the JSON null.
	type null struct{}
	for _, tc := range []struct {
		field string
		value any
		want  string
	}{
		{"hiden_size", 3, `unknown field "hiden_size"`},
		{"hidden_size", nil, `missing required field "hidden_size"`},
		{"hidden_size", null{}, `field "hidden_size" is null`},
		{"intermediate_size", null{}, `field "intermediate_size" is null`},
		{"rms_norm_eps", null{}, `field "rms_norm_eps" is null`},
		{"vocab_size", "many", `field "vocab_size"`},
		{"num_attention_heads", 0, "num_attention_heads must be positive"},
		{"num_key_value_heads", 4, "does not divide"},
		{"model_type", "mamba", `model_type "mamba"`},
		{"architectures", []string{"LlamaForSequenceClassification"}, "LlamaForCausalLM"},
		{"attention_bias", true, "attention_bias true"},
		{"mlp_bias", true, "mlp_bias true"},
		{"hidden_act", "gelu", `hidden_act "gelu"`},
		{"attention_dropout", 0.1, "attention_dropout"},
		{"rope_scaling", map[string]any{"rope_type": "linear", "factor": 2.0}, "rope_scaling"},
		{"rope_parameters", map[string]any{"rope_theta": 1e4, "rope_type": "yarn"}, `rope_type "yarn"`},
		{"rope_parameters", map[string]any{"rope_theta": 1e4, "factor": 2.0}, `"factor"`},
		{"rope_theta", 1234.0, "differs from rope_parameters.rope_theta"},
		{"rope_parameters", map[string]any{"rope_theta": 0.5}, "rope_theta"},
		{"rms_norm_eps", -1.0, "norm_eps"},
	} {
		cfg, ts := llamaCheckpoint(t, m)
		switch tc.value.(type) {
		case nil:
			delete(cfg, tc.field)
		case null:
			cfg[tc.field] = nil
		default:
			cfg[tc.field] = tc.value
		}
		_, err := LoadLlama(writeCheckpoint(t, cfg, ts))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %v: error %v, want one containing %q", tc.field, tc.value, err, tc.want)
		}
	}
	// Raw config text.
	cfg, ts := llamaCheckpoint(t, m)
	raw, _ := json.Marshal(cfg)
	for _, tc := range []struct{ text, want string }{
		{string(raw[:len(raw)-1]) + `, "vocab_size": 61}`, `duplicate key "vocab_size"`},
		{string(raw) + ` {}`, "data after the top-level value"},
		{`[1, 2]`, "not a JSON object"},
	} {
		dir := writeCheckpoint(t, cfg, ts)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLlama(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %.40q…: error %v, want one containing %q", tc.text, err, tc.want)
		}
	}
	// Tensor edits.
	nan := slices.Clone(m.params[3].Value)
	nan[5] = float32(math.NaN())
	for _, tc := range []struct {
		name string
		edit func(ts []safetensors.Tensor) []safetensors.Tensor
		want string
	}{
		{"shape", func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts[3].Shape = []int{ts[3].Shape[1], ts[3].Shape[0]}
			return ts
		}, `tensor "` + m.params[3].Name + `" has shape`},
		{"missing head", func(ts []safetensors.Tensor) []safetensors.Tensor { return ts[:len(ts)-1] }, `missing tensor "lm_head.weight"`},
		{"extra tensor", func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "model.layers.0.self_attn.q_proj.bias", Shape: []int{48}, F32: make([]float32, 48)})
		}, `unexpected tensor "model.layers.0.self_attn.q_proj.bias"`},
		{"NaN", func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts[3].F32 = nan
			return ts
		}, `tensor "` + m.params[3].Name + `" holds NaN at element 5`},
	} {
		cfg, ts := llamaCheckpoint(t, m)
		_, err := LoadLlama(writeCheckpoint(t, cfg, tc.edit(ts)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	// A tied model whose stored head is not the embedding.
	tied := newLlama(t, llamaConfigs[0])
	cfg, ts = llamaCheckpoint(t, tied)
	other := slices.Clone(tied.emb.Value)
	other[0]++
	ts = append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: tied.emb.Shape, F32: other})
	if _, err := LoadLlama(writeCheckpoint(t, cfg, ts)); err == nil || !strings.Contains(err.Error(), "differs from the embedding") {
		t.Errorf("tied head differing from the embedding: error %v", err)
	}
	if _, err := LoadLlama(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("empty directory: error %v", err)
	}
}

func TestParseTransformerConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(`{"arch": "transformer", "d_model": 384, "n_layer": 4, "n_head": 6, "n_kv_head": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.HeadSize() != 64 || c.KVHeads() != 2 || c.FF() != 1024 || c.PaddedVocab() != 256 || !c.TieEmbeddings {
		t.Errorf("derived sizes: head %d, kv %d, ff %d, vocab %d, tied %v", c.HeadSize(), c.KVHeads(), c.FF(), c.PaddedVocab(), c.TieEmbeddings)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"arch": "transformer", "d_modle": 3}`, `unknown field "d_modle"`},
		{`{"arch": "transformer", "n_head": 3}`, "n_head 3 does not divide d_model 256"},
		{`{"arch": "transformer", "n_head": 8, "n_kv_head": 3}`, "n_kv_head 3 does not divide n_head 8"},
		{`{"arch": "transformer", "head_dim": 7}`, "must be even"},
		{`{"arch": "transformer", "d_ff": -1}`, "d_ff must be positive or 0"},
		{`{"arch": "transformer", "rope_theta": 1}`, "rope_theta"},
		{`{"arch": "transformer", "init_std": 0}`, "init_std"},
		{`{"arch": "transformer", "n_head": 0}`, "n_head must be positive"},
		{`{"arch": "transformer"} {}`, "trailing data"},
		{`{"arch": "transformer", "d_model": 4096, "d_ff": 1000000}`, "exceeds 2^31 elements"},
		{`{"arch": "transformers"}`, `arch must be "mamba" or "transformer"`},
		{`{"arch": ""}`, `arch must be "mamba" or "transformer"`},
		{`{"tie_embeddings": false}`, `tie_embeddings false needs arch "transformer"`},
	} {
		_, err := ParseConfig(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
	// The other architecture's keys are ignored: a Mamba's n_head, a Transformer++'s d_state.
	for _, in := range []string{`{"n_head": -3}`, `{"arch": "transformer", "d_state": -1}`} {
		if _, err := ParseConfig(strings.NewReader(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// TestLlamaReferenceInvariants checks the float64 reference on the grouped, untied and odd-vocabulary
// configs the fixtures cannot cover here: logits at a position do not depend on later tokens;
// grouped key/value heads equal multi-head attention with each key/value head repeated over its
// group (transformers' repeat_kv); an untied head equal to the embedding gives the tied model.
func TestLlamaReferenceInvariants(t *testing.T) {
	c := llamaConfigs[1]
	m := newLlama(t, c)
	r := llamaRefFromModel(m, 8)
	const batch, L = 2, 9
	ids := randomIDs(batch*L, c.VocabSize, 3)
	V := c.PaddedVocab()
	logits := r.forward(t, ids, batch, L)
	ids[L+5] = (ids[L+5] + 1) % int32(c.VocabSize)
	changed := r.forward(t, ids, batch, L)
	if !slices.Equal(logits[:(L+5)*V], changed[:(L+5)*V]) {
		t.Error("logits before position 5 changed with the token at position 5")
	}

	mha := c
	mha.NKVHead = c.NHead
	rm := llamaRefFromModel(newLlama(t, mha), 8)
	hd, G := c.HeadSize(), c.NHead/c.KVHeads()
	for name, w := range r.w {
		rm.w[name] = w
		if strings.HasSuffix(name, "k_proj.weight") || strings.HasSuffix(name, "v_proj.weight") {
			rep := make([]float64, 0, len(w)*G)
			for g := range c.KVHeads() {
				for range G {
					rep = append(rep, w[g*hd*c.DModel:(g+1)*hd*c.DModel]...)
				}
			}
			rm.w[name] = rep
		}
	}
	if got := rm.forward(t, ids, batch, L); !slices.Equal(got, changed) {
		t.Errorf("grouped heads differ from repeated multi-head attention: relative L2 %.3g", testutil.RelL2(got, changed))
	}

	tied := c
	tied.TieEmbeddings = true
	rt := llamaRefFromModel(newLlama(t, tied), 8)
	for name, w := range r.w {
		rt.w[name] = w
	}
	r.w["lm_head.weight"] = r.w["model.embed_tokens.weight"]
	if !slices.Equal(rt.forward(t, ids, batch, L), r.forward(t, ids, batch, L)) {
		t.Error("an untied head equal to the embedding differs from the tied model")
	}
}

// FuzzParseLlamaHFConfig feeds arbitrary config.json files to the transformers
// Llama config parser. Nothing may panic; errors are one line; an accepted config
// validates and survives a write and re-read as the same network (derived sizes
// come back spelled out).
func FuzzParseLlamaHFConfig(f *testing.F) {
	c := DefaultConfig()
	c.Arch, c.VocabSize, c.DModel, c.NLayer, c.NHead, c.NKVHead = ArchTransformer, 64, 32, 2, 4, 2
	good, err := c.llamaHFConfigJSON()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	if fixture, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "llama_shared_tiny", "config.json")); err == nil {
		f.Add(fixture)
	}
	f.Add(bytes.Replace(good, []byte(`"hidden_size": `), []byte(`"hidden_size": null, "x": `), 1))
	f.Add([]byte(`{"model_type": "llama", "hidden_size": 32, "hidden_size": 32}`))
	f.Add(append(bytes.Clone(good), " x"...))
	f.Add([]byte(`{"model_type": "llama", "hidden_size": 1e300, "num_hidden_layers": -1, "num_attention_heads": 0, "vocab_size": 8, "rope_parameters": {"rope_theta": -1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkHFRoundTrip(t, raw, parseLlamaHFConfig, Config.llamaHFConfigJSON)
	})
}
