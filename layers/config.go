package layers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Config describes a language model of either architecture (Arch): a Mamba,
// or a Transformer++ (transformers' LlamaForCausalLM). The JSON form uses the
// snake_case keys in the struct tags; ParseConfig decodes it strictly on top
// of DefaultConfig. vocab_size, d_model, n_layer, norm_eps and
// pad_vocab_multiple serve both architectures; the keys of the other
// architecture are ignored (so that one sweep base serves both).
//
// Note that the zero value of Selective is false, the LTI ablation: start
// from DefaultConfig when building a Config in Go.
type Config struct {
	Arch string `json:"arch"` // ArchMamba or ArchTransformer

	VocabSize int `json:"vocab_size"` // before padding
	DModel    int `json:"d_model"`
	NLayer    int `json:"n_layer"`
	DState    int `json:"d_state"` // N
	Expand    int `json:"expand"`  // d_inner = Expand·DModel
	DConv     int `json:"d_conv"`  // K, depthwise causal conv width
	DtRank    int `json:"dt_rank"` // R; 0 = "auto" = ceil(DModel/16)

	DtMin       float64 `json:"dt_min"`        // Δ initialisation range, log-uniform
	DtMax       float64 `json:"dt_max"`        //
	DtScale     float64 `json:"dt_scale"`      // dt_proj.weight ~ U(±DtScale/√R)
	DtInitFloor float64 `json:"dt_init_floor"` // lower clamp of the initial Δ
	NormEps     float64 `json:"norm_eps"`      // RMSNorm ε

	ConvBias  bool `json:"conv_bias"` // conv1d.bias present
	Bias      bool `json:"bias"`      // in_proj.bias and out_proj.bias present
	Selective bool `json:"selective"` // false: Δ, B, C are learned constants (LTI ablation)

	// The Transformer++ (arch "transformer"): pre-norm blocks of causal
	// grouped-query attention with rotary embeddings and a SwiGLU MLP, no biases.
	NHead         int     `json:"n_head"`         // num_attention_heads
	NKVHead       int     `json:"n_kv_head"`      // num_key_value_heads, a divisor of n_head; 0 = n_head
	HeadDim       int     `json:"head_dim"`       // 0 = d_model / n_head
	DFF           int     `json:"d_ff"`           // intermediate_size of the SwiGLU MLP; 0 = 8/3·d_model rounded up to a multiple of 64
	RopeTheta     float64 `json:"rope_theta"`     // rotary base θ
	InitStd       float64 `json:"init_std"`       // initializer_range: weights ~ N(0, init_std²)
	TieEmbeddings bool    `json:"tie_embeddings"` // the LM head is the embedding (always, for a Mamba)

	PadVocabMultiple int `json:"pad_vocab_multiple"` // vocabulary padded up to a multiple of this; 0 = 8
}

// The architectures of Config.Arch.
const (
	ArchMamba       = "mamba"
	ArchTransformer = "transformer"
)

// IsTransformer reports whether c is a Transformer++.
func (c Config) IsTransformer() bool { return c.Arch == ArchTransformer }

// DefaultConfig returns a Mamba with mamba_ssm's defaults (d_state 16, d_conv
// 4, expand 2, dt_rank auto, Δ ∈ [1e-3, 0.1] floored at 1e-4, ε 1e-5, conv
// bias, no linear biases, selective, vocabulary padded to a multiple of 8)
// with a small 2-layer, d_model 256 body and a byte-level vocabulary; and,
// for arch "transformer", 4 heads (as many key/value heads, of d_model/4
// channels), the SwiGLU width 8/3·d_model rounded up to 64, θ = 10⁴,
// transformers' initialisation scale 0.02 and a tied head.
func DefaultConfig() Config {
	return Config{
		Arch:      ArchMamba,
		VocabSize: 256, DModel: 256, NLayer: 2, DState: 16, Expand: 2, DConv: 4,
		DtMin: 1e-3, DtMax: 0.1, DtScale: 1, DtInitFloor: 1e-4, NormEps: 1e-5,
		ConvBias: true, Selective: true,
		NHead: 4, RopeTheta: 10000, InitStd: 0.02, TieEmbeddings: true,
		PadVocabMultiple: 8,
	}
}

// ParseConfig decodes a JSON config strictly: keys absent from the input keep
// DefaultConfig's values, unknown keys and trailing data are errors, and the
// result is validated.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("model config: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ParseConfigBytes is ParseConfig on a byte slice.
func ParseConfigBytes(b []byte) (Config, error) { return ParseConfig(bytes.NewReader(b)) }

// Validate reports the first invalid field, by its JSON name.
func (c Config) Validate() error {
	switch c.Arch {
	case ArchTransformer:
		return c.validateTransformer()
	case ArchMamba:
	default:
		return fmt.Errorf("model config: arch must be %q or %q, got %q", ArchMamba, ArchTransformer, c.Arch)
	}
	if !c.TieEmbeddings {
		return fmt.Errorf("model config: tie_embeddings false needs arch %q (a Mamba's LM head is its embedding)", ArchTransformer)
	}
	positive := []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"d_model", c.DModel}, {"n_layer", c.NLayer},
		{"d_state", c.DState}, {"expand", c.Expand}, {"d_conv", c.DConv},
	}
	for _, f := range positive {
		if f.v <= 0 {
			return fmt.Errorf("model config: %s must be positive, got %d", f.name, f.v)
		}
	}
	if c.DtRank < 0 {
		return fmt.Errorf("model config: dt_rank must be positive or 0 (auto), got %d", c.DtRank)
	}
	if c.PadVocabMultiple < 0 {
		return fmt.Errorf("model config: pad_vocab_multiple must be positive or 0 (default 8), got %d", c.PadVocabMultiple)
	}
	if c.DState > 256 {
		return fmt.Errorf("model config: d_state must be at most 256, got %d", c.DState)
	}
	finite := func(name string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return fmt.Errorf("model config: %s must be a positive finite number, got %g", name, v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"dt_min", c.DtMin}, {"dt_max", c.DtMax}, {"dt_scale", c.DtScale}, {"dt_init_floor", c.DtInitFloor}, {"norm_eps", c.NormEps}} {
		if err := finite(f.name, f.v); err != nil {
			return err
		}
	}
	if c.DtMin > c.DtMax {
		return fmt.Errorf("model config: dt_min %g exceeds dt_max %g", c.DtMin, c.DtMax)
	}
	// The largest parameters (in float64: the sizes may overflow an int),
	// without laying the model out: n_layer may be huge.
	D, E, N, K := float64(c.DModel), float64(c.Expand)*float64(c.DModel), float64(c.DState), float64(c.DConv)
	R := float64(c.DtRank)
	if R == 0 {
		R = math.Ceil(D / 16)
	}
	const mx = "backbone.layers.0.mixer."
	return c.checkSizes([]shape{
		{"backbone.embeddings.weight", []float64{c.paddedVocab64(), D}}, {mx + "in_proj.weight", []float64{2 * E, D}}, {mx + "conv1d.weight", []float64{E, 1, K}},
		{mx + "x_proj.weight", []float64{R + 2*N, E}}, {mx + "dt_proj.weight", []float64{E, R}}, {mx + "A_log", []float64{E, N}},
	})
}

// shape is a parameter's name and dimensions, in float64: a config's sizes
// may overflow an int before they are validated.
type shape struct {
	name string
	dims []float64
}

// paddedVocab64 is PaddedVocab in float64.
func (c Config) paddedVocab64() float64 {
	m := float64(c.PadVocabMultiple)
	if c.PadVocabMultiple == 0 {
		m = 8
	}
	return math.Ceil(float64(c.VocabSize)/m) * m
}

// checkSizes refuses a parameter (the largest of each kind: they do not
// depend on the layer) of 2^31 elements or more, and a parameter count that
// overflows an int, without laying the model out: n_layer may be huge.
func (c Config) checkSizes(ps []shape) error {
	for _, p := range ps {
		n, dims := 1.0, make([]string, len(p.dims))
		for i, d := range p.dims {
			n *= d
			dims[i] = strconv.FormatFloat(d, 'f', 0, 64)
		}
		if !(n < 1<<31) {
			return fmt.Errorf("model config: parameter %s of shape [%s] exceeds 2^31 elements", p.name, strings.Join(dims, " "))
		}
	}
	if _, ok := c.numParams(); !ok {
		return fmt.Errorf("model config: n_layer %d: the parameter count overflows", c.NLayer)
	}
	return nil
}

// numParams is NumParams with overflow-checked arithmetic: ok is false when
// the count does not fit an int. It does not lay the model out. Validate
// first: the sizes of one layer must be those of a valid config.
func (c Config) numParams() (int, bool) {
	if c.IsTransformer() {
		D, V, F, Q, KV := c.DModel, c.PaddedVocab(), c.FF(), c.NHead*c.HeadSize(), c.KVHeads()*c.HeadSize()
		layer := 2*D + 2*Q*D + 2*KV*D + 3*F*D // two norms, q and o, k and v, the SwiGLU
		heads := 1
		if !c.TieEmbeddings {
			heads = 2
		}
		if c.NLayer > 0 && layer > (math.MaxInt-heads*V*D-D)/c.NLayer {
			return 0, false
		}
		return heads*V*D + c.NLayer*layer + D, true
	}
	D, E, N, K, R, V := c.DModel, c.DInner(), c.DState, c.DConv, c.Rank(), c.PaddedVocab()
	layer := D + 2*E*D + E*K + E + E*N + E + D*E // norm, in_proj, conv1d, dt_proj.bias, A_log, D, out_proj
	if c.Bias {
		layer += 2*E + D
	}
	if c.ConvBias {
		layer += E
	}
	if c.Selective {
		layer += (R+2*N)*E + E*R
	} else {
		layer += 2 * N
	}
	if c.NLayer > 0 && layer > (math.MaxInt-V*D-D)/c.NLayer {
		return 0, false
	}
	return V*D + c.NLayer*layer + D, true
}

// tooLarge reports whether a tensor of these dimensions would have 2^31
// elements or more.
func tooLarge(dims ...int) bool {
	n := 1.0
	for _, d := range dims {
		n *= float64(d)
	}
	return n >= 1<<31
}

// widest is the largest number of columns of an activation of the training
// graph: the logits, in_proj's output, the attention's or the SwiGLU's.
func (c Config) widest() int {
	if c.IsTransformer() {
		return max(c.PaddedVocab(), c.FF(), c.NHead*c.HeadSize(), c.DModel)
	}
	return max(c.PaddedVocab(), 2*c.DInner())
}

// DInner is the width of the scan, Expand·DModel.
func (c Config) DInner() int { return c.Expand * c.DModel }

// Rank is the resolved dt_rank: DtRank, or ceil(DModel/16) when it is 0.
func (c Config) Rank() int {
	if c.DtRank > 0 {
		return c.DtRank
	}
	return (c.DModel + 15) / 16
}

// PaddedVocab is VocabSize rounded up to a multiple of PadVocabMultiple
// (8 when that is 0): the number of rows of the embedding and of the logits.
func (c Config) PaddedVocab() int {
	m := c.PadVocabMultiple
	if m == 0 {
		m = 8
	}
	return (c.VocabSize + m - 1) / m * m
}
