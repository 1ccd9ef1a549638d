package layers

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"

	"github.com/mambago/mamba/internal/regfile"
	"github.com/mambago/mamba/internal/strictjson"

	"github.com/mambago/mamba/data/safetensors"
)

// Checkpoint directories follow transformers' MambaForCausalLM layout:
//
//	config.json        MambaConfig fields (hidden_size, num_hidden_layers, ...)
//	model.safetensors  the state dict, without the tied lm_head.weight
const (
	configFile  = "config.json"
	weightsFile = "model.safetensors"
)

// hfConfig is the subset of transformers' MambaConfig that defines the
// network. Pointer fields are optional; the rest are required.
type hfConfig struct {
	HiddenSize         *int     `json:"hidden_size"`
	NumHiddenLayers    *int     `json:"num_hidden_layers"`
	StateSize          *int     `json:"state_size"`
	Expand             *int     `json:"expand"`
	ConvKernel         *int     `json:"conv_kernel"`
	VocabSize          *int     `json:"vocab_size"`
	TimeStepRank       any      `json:"time_step_rank"` // integer or "auto"
	LayerNormEpsilon   *float64 `json:"layer_norm_epsilon"`
	UseBias            *bool    `json:"use_bias"`
	UseConvBias        *bool    `json:"use_conv_bias"`
	TieWordEmbeddings  *bool    `json:"tie_word_embeddings"`
	IntermediateSize   *int     `json:"intermediate_size"`
	TimeStepMin        *float64 `json:"time_step_min"`
	TimeStepMax        *float64 `json:"time_step_max"`
	TimeStepFloor      *float64 `json:"time_step_floor"`
	TimeStepScale      *float64 `json:"time_step_scale"`
	TimeStepInitScheme *string  `json:"time_step_init_scheme"`
	ModelType          *string  `json:"model_type"`
	HiddenAct          *string  `json:"hidden_act"`
	ResidualInFP32     *bool    `json:"residual_in_fp32"`
	Architectures      []string `json:"architectures"`
	Selective          *bool    `json:"selective"` // this package's LTI ablation; absent means true
	RMSNorm            *bool    `json:"rms_norm"`  // mamba_ssm field kept by the released -hf configs
	NLayer             *int     `json:"n_layer"`   // likewise, a copy of num_hidden_layers
}

// maxHFLayers bounds num_hidden_layers (released Mamba models have at most 64).
const maxHFLayers = 1 << 12

// hfRequired are the fields without which the network is undefined.
var hfRequired = []string{"hidden_size", "num_hidden_layers", "state_size", "expand", "conv_kernel", "vocab_size", "model_type"}

// hfIgnored are MambaConfig (and PretrainedConfig) fields that do not change
// the network's function; they are accepted and dropped.
var hfIgnored = []string{
	"_name_or_path", "bos_token_id", "eos_token_id", "pad_token_id", "dtype", "torch_dtype",
	"transformers_version", "initializer_range", "rescale_prenorm_residual", "use_cache",
	"use_mambapy", "use_associative_scan", "output_attentions", "output_hidden_states",
	"return_dict", "is_encoder_decoder", "id2label", "label2id", "problem_type",
	"tokenizer_class", "chunk_size_feed_forward", "add_cross_attention", "use_return_dict",
	"fused_add_norm", "pad_vocab_size_multiple", // mamba_ssm fields in the released -hf configs
}

// hfKnown is every accepted key: the json tags of hfConfig plus hfIgnored.
func hfKnown() map[string]bool {
	known := jsonFields(hfConfig{})
	for _, k := range hfIgnored {
		known[k] = true
	}
	return known
}

// parseHFConfig converts a transformers config.json into a Config. Unknown,
// repeated, missing and null required fields are errors that name the field;
// a null optional field means its default (Python's None).
func parseHFConfig(raw []byte) (Config, error) {
	tree, err := strictjson.Decode(raw)
	if err != nil {
		return Config{}, fmt.Errorf("config.json: %v", err)
	}
	keys, ok := tree.(map[string]any)
	if !ok {
		return Config{}, fmt.Errorf("config.json: not a JSON object")
	}
	known := hfKnown()
	names := slices.Sorted(maps.Keys(keys))
	for _, k := range names {
		if !known[k] {
			return Config{}, fmt.Errorf("config.json: unknown field %q", k)
		}
	}
	for _, k := range hfRequired {
		v, ok := keys[k]
		switch {
		case !ok:
			return Config{}, fmt.Errorf("config.json: missing required field %q", k)
		case v == nil:
			return Config{}, fmt.Errorf("config.json: required field %q is null", k)
		}
	}
	var h hfConfig
	for _, k := range names {
		if slices.Contains(hfIgnored, k) {
			continue
		}
		// One field at a time, so that a type error names its field.
		if err := decodeField(k, keys[k], &h); err != nil {
			return Config{}, fmt.Errorf("config.json: %w", err)
		}
	}
	if *h.ModelType != "mamba" {
		return Config{}, fmt.Errorf("config.json: model_type %q is not \"mamba\"", *h.ModelType)
	}
	if h.HiddenAct != nil && *h.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("config.json: hidden_act %q is not supported (only \"silu\")", *h.HiddenAct)
	}
	if h.RMSNorm != nil && !*h.RMSNorm {
		return Config{}, fmt.Errorf("config.json: rms_norm false (LayerNorm) is not supported")
	}
	if h.NLayer != nil && *h.NLayer != *h.NumHiddenLayers {
		return Config{}, fmt.Errorf("config.json: n_layer %d differs from num_hidden_layers %d", *h.NLayer, *h.NumHiddenLayers)
	}
	if h.TieWordEmbeddings != nil && !*h.TieWordEmbeddings {
		return Config{}, fmt.Errorf("config.json: tie_word_embeddings false is not supported (the LM head is the embedding)")
	}
	if h.TimeStepInitScheme != nil && *h.TimeStepInitScheme != "random" && *h.TimeStepInitScheme != "constant" {
		return Config{}, fmt.Errorf("config.json: time_step_init_scheme %q is neither \"random\" nor \"constant\"", *h.TimeStepInitScheme)
	}
	// Validate lays the model out layer by layer: bound the count first.
	if *h.NumHiddenLayers > maxHFLayers {
		return Config{}, fmt.Errorf("config.json: num_hidden_layers %d is more than %d", *h.NumHiddenLayers, maxHFLayers)
	}
	c := DefaultConfig()
	c.DModel, c.NLayer, c.DState = *h.HiddenSize, *h.NumHiddenLayers, *h.StateSize
	c.Expand, c.DConv, c.VocabSize = *h.Expand, *h.ConvKernel, *h.VocabSize
	c.Bias = true // MambaConfig's default
	switch r := h.TimeStepRank.(type) {
	case nil:
	case string:
		if r != "auto" {
			return Config{}, fmt.Errorf("config.json: time_step_rank %q is neither an integer nor \"auto\"", r)
		}
	case float64:
		if r != math.Trunc(r) || r < 1 || r > 1<<31 {
			return Config{}, fmt.Errorf("config.json: time_step_rank %v is not a positive integer", r)
		}
		c.DtRank = int(r)
	default:
		return Config{}, fmt.Errorf("config.json: time_step_rank has the wrong type")
	}
	setF := func(dst *float64, src *float64) {
		if src != nil {
			*dst = *src
		}
	}
	setB := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	setF(&c.NormEps, h.LayerNormEpsilon)
	setF(&c.DtMin, h.TimeStepMin)
	setF(&c.DtMax, h.TimeStepMax)
	setF(&c.DtInitFloor, h.TimeStepFloor)
	setF(&c.DtScale, h.TimeStepScale)
	setB(&c.Bias, h.UseBias)
	setB(&c.ConvBias, h.UseConvBias)
	setB(&c.Selective, h.Selective)
	// The stored vocabulary is already padded; keep it as it is.
	if c.VocabSize%8 != 0 {
		c.PadVocabMultiple = 1
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	if h.IntermediateSize != nil && *h.IntermediateSize != c.DInner() {
		return Config{}, fmt.Errorf("config.json: intermediate_size %d is not expand·hidden_size = %d", *h.IntermediateSize, c.DInner())
	}
	return c, nil
}

// hfConfigJSON is the config.json written by Save.
func (c Config) hfConfigJSON() ([]byte, error) {
	m := map[string]any{
		"architectures":         []string{"MambaForCausalLM"},
		"model_type":            "mamba",
		"hidden_size":           c.DModel,
		"num_hidden_layers":     c.NLayer,
		"state_size":            c.DState,
		"expand":                c.Expand,
		"conv_kernel":           c.DConv,
		"intermediate_size":     c.DInner(),
		"vocab_size":            c.PaddedVocab(),
		"time_step_rank":        c.Rank(),
		"time_step_min":         c.DtMin,
		"time_step_max":         c.DtMax,
		"time_step_floor":       c.DtInitFloor,
		"time_step_scale":       c.DtScale,
		"time_step_init_scheme": "random",
		"layer_norm_epsilon":    c.NormEps,
		"use_bias":              c.Bias,
		"use_conv_bias":         c.ConvBias,
		"tie_word_embeddings":   true,
		"residual_in_fp32":      true,
		"hidden_act":            "silu",
		"dtype":                 "float32",
	}
	if !c.Selective {
		m["selective"] = false
	}
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}

// Load reads a transformers-style model directory (config.json and
// model.safetensors in F32, F64, BF16 or F16). The embedding may be stored
// as backbone.embeddings.weight (transformers) or backbone.embedding.weight
// (mamba_ssm); a tied lm_head.weight, if present, must equal it.
func Load(dir string) (*Model, error) {
	raw, err := regfile.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	cfg, err := parseHFConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	f, err := safetensors.ReadFile(filepath.Join(dir, weightsFile))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m := layout(cfg)
	if err := m.setWeights(f); err != nil {
		return nil, fmt.Errorf("load model %s: %w", f.Path, err)
	}
	return m, nil
}

// setWeights checks f's names and shapes against the layout, then allocates
// the parameters and copies their values in.
func (m *Model) setWeights(f *safetensors.File) error {
	const alias = "backbone.embedding.weight" // mamba_ssm's name of the embedding
	source := map[*Param]string{}
	for _, p := range m.params {
		source[p] = p.Name
	}
	if _, ok := f.Info(alias); ok {
		if _, dup := f.Info(m.emb.Name); dup {
			return fmt.Errorf("both %s and %s are present", alias, m.emb.Name)
		}
		source[m.emb] = alias
	}
	known := map[string]bool{"lm_head.weight": true}
	for _, p := range m.params {
		name := source[p]
		known[name] = true
		info, ok := f.Info(name)
		if !ok {
			return fmt.Errorf("missing tensor %q", p.Name)
		}
		if !slices.Equal(info.Shape, p.Shape) {
			return fmt.Errorf("tensor %q has shape %v, the config needs %v", name, info.Shape, p.Shape)
		}
	}
	for _, n := range f.Names() {
		if !known[n] {
			return fmt.Errorf("unexpected tensor %q (not a parameter of this config)", n)
		}
	}
	m.allocate()
	for _, p := range m.params {
		v, _, err := f.Float32(source[p])
		if err != nil {
			return err
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("tensor %q holds %v at element %d (a diverged or corrupt checkpoint)", source[p], x, i)
			}
		}
		copy(p.Value, v)
	}
	if _, ok := f.Info("lm_head.weight"); ok {
		return m.checkTiedHead(f)
	}
	return nil
}

// checkTiedHead accepts a stored lm_head.weight only if it is the embedding.
func (m *Model) checkTiedHead(f *safetensors.File) error {
	head, shape, err := f.Float32("lm_head.weight")
	if err != nil {
		return err
	}
	if !slices.Equal(shape, m.emb.Shape) || !slices.Equal(head, m.emb.Value) {
		return fmt.Errorf("tensor \"lm_head.weight\" differs from the embedding, but the head is tied")
	}
	return nil
}

// Save writes config.json and model.safetensors (F32, without the tied
// lm_head.weight) into dir, creating it if needed. Each file is written to a
// temporary file, synced and renamed, weights first.
func (m *Model) Save(dir string) error { return m.SaveAs(dir, safetensors.F32) }

// SaveAs is Save with a chosen storage type: F32, BF16, F16 or F64.
func (m *Model) SaveAs(dir string, dtype safetensors.DType) error {
	cj, err := m.cfg.hfConfigJSON()
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return saveParams(dir, m.params, cj, dtype)
}
