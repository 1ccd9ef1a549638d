package layers

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/mambago/mamba/internal/strictjson"
)

// KVHeads is the resolved number of key/value heads, NKVHead or NHead.
func (c Config) KVHeads() int {
	if c.NKVHead > 0 {
		return c.NKVHead
	}
	return c.NHead
}

// HeadSize is the resolved head dimension, HeadDim or DModel/NHead.
func (c Config) HeadSize() int {
	if c.HeadDim > 0 || c.NHead <= 0 {
		return c.HeadDim
	}
	return c.DModel / c.NHead
}

// FF is the resolved SwiGLU width: DFF, or 8/3·DModel rounded up to a multiple of 64.
func (c Config) FF() int {
	if c.DFF > 0 {
		return c.DFF
	}
	return (8*c.DModel + 3*64 - 1) / (3 * 64) * 64
}

// validateTransformer is Validate for arch "transformer": the shared fields and the
// Transformer++'s, by their JSON names.
func (c Config) validateTransformer() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab_size", c.VocabSize}, {"d_model", c.DModel}, {"n_layer", c.NLayer}, {"n_head", c.NHead}} {
		if f.v <= 0 {
			return fmt.Errorf("model config: %s must be positive, got %d", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name, zero string
		v          int
	}{{"n_kv_head", "n_head", c.NKVHead}, {"head_dim", "d_model / n_head", c.HeadDim}, {"d_ff", "8/3·d_model", c.DFF}, {"pad_vocab_multiple", "8", c.PadVocabMultiple}} {
		if f.v < 0 {
			return fmt.Errorf("model config: %s must be positive or 0 (%s), got %d", f.name, f.zero, f.v)
		}
	}
	if c.NHead%c.KVHeads() != 0 {
		return fmt.Errorf("model config: n_kv_head %d does not divide n_head %d", c.KVHeads(), c.NHead)
	}
	if c.HeadDim == 0 && c.DModel%c.NHead != 0 {
		return fmt.Errorf("model config: n_head %d does not divide d_model %d (set head_dim)", c.NHead, c.DModel)
	}
	if hd := c.HeadSize(); hd%2 != 0 {
		return fmt.Errorf("model config: the head dimension %d must be even (rotary embeddings rotate pairs)", hd)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"norm_eps", c.NormEps}, {"init_std", c.InitStd}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v <= 0 {
			return fmt.Errorf("model config: %s must be a positive finite number, got %g", f.name, f.v)
		}
	}
	if math.IsNaN(c.RopeTheta) || math.IsInf(c.RopeTheta, 0) || c.RopeTheta <= 1 {
		return fmt.Errorf("model config: rope_theta must be a finite number above 1, got %g", c.RopeTheta)
	}
	D, hd := float64(c.DModel), float64(c.HeadSize())
	F := float64(c.DFF)
	if c.DFF == 0 {
		F = math.Ceil(8*D/(3*64)) * 64
	}
	Q, KV := float64(c.NHead)*hd, float64(c.KVHeads())*hd
	return c.checkSizes([]shape{{"model.embed_tokens.weight", []float64{c.paddedVocab64(), D}}, {"q_proj.weight", []float64{Q, D}},
		{"k_proj.weight", []float64{KV, D}}, {"mlp.gate_proj.weight", []float64{F, D}}})
}

// llamaHF is the part of transformers' LlamaConfig that defines the network. Pointers are
// optional fields; hfLlamaRequired lists the required ones.
type llamaHF struct {
	HiddenSize        *int           `json:"hidden_size"`
	NumHiddenLayers   *int           `json:"num_hidden_layers"`
	NumAttentionHeads *int           `json:"num_attention_heads"`
	NumKeyValueHeads  *int           `json:"num_key_value_heads"`
	HeadDim           *int           `json:"head_dim"`
	IntermediateSize  *int           `json:"intermediate_size"`
	VocabSize         *int           `json:"vocab_size"`
	RMSNormEps        *float64       `json:"rms_norm_eps"`
	RopeTheta         *float64       `json:"rope_theta"`
	RopeParameters    map[string]any `json:"rope_parameters"` // transformers 5: {"rope_theta", "rope_type"}
	RopeScaling       any            `json:"rope_scaling"`    // transformers 4: null, or a scaling we refuse
	TieWordEmbeddings *bool          `json:"tie_word_embeddings"`
	InitializerRange  *float64       `json:"initializer_range"`
	AttentionBias     *bool          `json:"attention_bias"`
	MLPBias           *bool          `json:"mlp_bias"`
	HiddenAct         *string        `json:"hidden_act"`
	AttentionDropout  *float64       `json:"attention_dropout"`
	PretrainingTP     *int           `json:"pretraining_tp"` // splits transformers' products, same function
	ModelType         *string        `json:"model_type"`
	Architectures     []string       `json:"architectures"`
}

var (
	// hfLlamaRequired are the fields without which the network is undefined.
	hfLlamaRequired = []string{"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size", "model_type"}
	// hfLlamaNullable may be null, meaning transformers' default (num_key_value_heads =
	// num_attention_heads, head_dim = hidden_size / num_attention_heads, no rope scaling).
	hfLlamaNullable = []string{"num_key_value_heads", "head_dim", "rope_scaling", "rope_parameters"}
	// hfLlamaIgnored are LlamaConfig (and PretrainedConfig) fields that do not change the
	// network's function; they are accepted, whatever their value, and dropped. max_position_embeddings
	// only bounds transformers' rope cache; pad_token_id only freezes an embedding row there.
	hfLlamaIgnored = []string{
		"_name_or_path", "bos_token_id", "eos_token_id", "pad_token_id", "dtype", "torch_dtype",
		"transformers_version", "use_cache", "max_position_embeddings", "output_attentions",
		"output_hidden_states", "return_dict", "is_encoder_decoder", "id2label", "label2id",
		"problem_type", "tokenizer_class", "chunk_size_feed_forward", "add_cross_attention",
		"use_return_dict", "_attn_implementation_autoset",
	}
)

// parseLlamaHFConfig converts a transformers LlamaConfig config.json into a Config of arch
// "transformer". Unknown,
// duplicate, missing required and null fields are errors that name the field, as is every value
// the network here does not implement (biases, another activation, rope scaling, dropout).
func parseLlamaHFConfig(raw []byte) (Config, error) {
	tree, err := strictjson.Decode(raw)
	if err != nil {
		return Config{}, fmt.Errorf("config.json: %v", err)
	}
	vals, ok := tree.(map[string]any)
	if !ok {
		return Config{}, fmt.Errorf("config.json: not a JSON object")
	}
	fields := jsonFields(llamaHF{})
	var h llamaHF
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		switch {
		case slices.Contains(hfLlamaIgnored, k):
			continue
		case !fields[k]:
			return Config{}, fmt.Errorf("config.json: unknown field %q", k)
		case vals[k] == nil && slices.Contains(hfLlamaNullable, k):
			continue
		case vals[k] == nil:
			return Config{}, fmt.Errorf("config.json: field %q is null", k)
		}
		if err := decodeField(k, vals[k], &h); err != nil {
			return Config{}, fmt.Errorf("config.json: %w", err)
		}
	}
	for _, k := range hfLlamaRequired {
		if _, ok := vals[k]; !ok {
			return Config{}, fmt.Errorf("config.json: missing required field %q", k)
		}
	}
	if *h.ModelType != "llama" {
		return Config{}, fmt.Errorf("config.json: model_type %q is not \"llama\"", *h.ModelType)
	}
	if h.Architectures != nil && !slices.Equal(h.Architectures, []string{"LlamaForCausalLM"}) {
		return Config{}, fmt.Errorf("config.json: architectures %q: only LlamaForCausalLM is supported", h.Architectures)
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"attention_bias", h.AttentionBias}, {"mlp_bias", h.MLPBias}} {
		if f.v != nil && *f.v {
			return Config{}, fmt.Errorf("config.json: %s true is not supported (the network has no biases)", f.name)
		}
	}
	if h.HiddenAct != nil && *h.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("config.json: hidden_act %q is not supported (only \"silu\")", *h.HiddenAct)
	}
	if h.AttentionDropout != nil && *h.AttentionDropout != 0 {
		return Config{}, fmt.Errorf("config.json: attention_dropout %g is not supported (only 0)", *h.AttentionDropout)
	}
	if h.PretrainingTP != nil && *h.PretrainingTP < 1 {
		return Config{}, fmt.Errorf("config.json: pretraining_tp %d must be positive", *h.PretrainingTP)
	}
	if h.RopeScaling != nil {
		v, _ := json.Marshal(h.RopeScaling)
		return Config{}, fmt.Errorf("config.json: rope_scaling %s is not supported (only the default rotary embedding)", v)
	}
	c := DefaultConfig()
	c.Arch = ArchTransformer
	c.DModel, c.NLayer, c.NHead = *h.HiddenSize, *h.NumHiddenLayers, *h.NumAttentionHeads
	c.DFF, c.VocabSize = *h.IntermediateSize, *h.VocabSize
	// transformers' LlamaConfig defaults for absent fields.
	c.NormEps, c.TieEmbeddings = 1e-6, false
	if h.NumKeyValueHeads != nil {
		c.NKVHead = *h.NumKeyValueHeads
	}
	if h.HeadDim != nil {
		c.HeadDim = *h.HeadDim
	}
	if h.RMSNormEps != nil {
		c.NormEps = *h.RMSNormEps
	}
	if h.TieWordEmbeddings != nil {
		c.TieEmbeddings = *h.TieWordEmbeddings
	}
	if h.InitializerRange != nil {
		c.InitStd = *h.InitializerRange
	}
	if c.RopeTheta, err = hfRopeTheta(h); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	for _, f := range []struct {
		name string
		v    *int
	}{
		{"hidden_size", h.HiddenSize}, {"num_hidden_layers", h.NumHiddenLayers}, {"num_attention_heads", h.NumAttentionHeads},
		{"intermediate_size", h.IntermediateSize}, {"vocab_size", h.VocabSize}, {"num_key_value_heads", h.NumKeyValueHeads}, {"head_dim", h.HeadDim},
	} {
		if f.v != nil && *f.v <= 0 {
			return Config{}, fmt.Errorf("config.json: %s must be positive, got %d", f.name, *f.v)
		}
	}
	// The stored vocabulary is already padded (or not): keep it as it is.
	if c.VocabSize%8 != 0 {
		c.PadVocabMultiple = 1
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

// hfRopeTheta reads θ from transformers 5's rope_parameters or the top-level rope_theta (10⁴ when
// neither is given); both must agree, and only the default rotary embedding is supported.
func hfRopeTheta(h llamaHF) (float64, error) {
	theta := 10000.0
	if h.RopeTheta != nil {
		theta = *h.RopeTheta
	}
	if h.RopeParameters == nil {
		return theta, nil
	}
	var p struct {
		Theta *float64 `json:"rope_theta"`
		Type  *string  `json:"rope_type"`
	}
	for _, k := range slices.Sorted(maps.Keys(h.RopeParameters)) {
		if k != "rope_theta" && k != "rope_type" {
			return 0, fmt.Errorf("rope_parameters: field %q is not supported (only rope_theta and rope_type \"default\")", k)
		}
		if err := decodeField(k, h.RopeParameters[k], &p); err != nil || h.RopeParameters[k] == nil {
			v, _ := json.Marshal(h.RopeParameters[k])
			return 0, fmt.Errorf("rope_parameters: field %q: %s has the wrong type", k, v)
		}
	}
	if p.Type != nil && *p.Type != "default" {
		return 0, fmt.Errorf("rope_parameters: rope_type %q is not supported (only \"default\")", *p.Type)
	}
	if p.Theta != nil {
		if h.RopeTheta != nil && *h.RopeTheta != *p.Theta {
			return 0, fmt.Errorf("rope_theta %g differs from rope_parameters.rope_theta %g", *h.RopeTheta, *p.Theta)
		}
		theta = *p.Theta
	}
	return theta, nil
}

// jsonFields is the set of json names of the fields of the struct v.
func jsonFields(v any) map[string]bool {
	b, _ := json.Marshal(v)
	var m map[string]any
	json.Unmarshal(b, &m)
	fields := map[string]bool{}
	for k := range m {
		fields[k] = true
	}
	return fields
}

// decodeField decodes the one field {k: v} of a decoded JSON tree into dst, a pointer to a struct
// whose field k it sets, naming k when the value has the wrong type.
func decodeField(k string, v any, dst any) error {
	one, _ := json.Marshal(map[string]any{k: v}) // a decoded tree: cannot fail
	if err := json.Unmarshal(one, dst); err != nil {
		b, _ := json.Marshal(v)
		return fmt.Errorf("field %q: %s has the wrong type", k, b)
	}
	return nil
}

// llamaHFConfigJSON is the config.json written by Llama.Save: transformers' LlamaConfig fields, with
// θ both at the top level (transformers 4) and in rope_parameters (transformers 5).
func (c Config) llamaHFConfigJSON() ([]byte, error) {
	m := map[string]any{
		"architectures":       []string{"LlamaForCausalLM"},
		"model_type":          "llama",
		"hidden_size":         c.DModel,
		"num_hidden_layers":   c.NLayer,
		"num_attention_heads": c.NHead,
		"num_key_value_heads": c.KVHeads(),
		"head_dim":            c.HeadSize(),
		"intermediate_size":   c.FF(),
		"vocab_size":          c.PaddedVocab(),
		"rms_norm_eps":        c.NormEps,
		"rope_theta":          c.RopeTheta,
		"rope_parameters":     map[string]any{"rope_theta": c.RopeTheta, "rope_type": "default"},
		"tie_word_embeddings": c.TieEmbeddings,
		"initializer_range":   c.InitStd,
		"attention_bias":      false,
		"mlp_bias":            false,
		"attention_dropout":   0.0,
		"hidden_act":          "silu",
		"dtype":               "float32",
	}
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}
