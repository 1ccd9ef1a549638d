package layers

import (
	"fmt"

	"github.com/mambago/mamba/internal/rng"
)

// llamaBlock holds one decoder layer's parameters, named as in transformers' LlamaForCausalLM.
type llamaBlock struct {
	attnNorm       *Param // (D): input_layernorm
	q, k, v, o     *Param // (H·hd, D), (Hkv·hd, D), (Hkv·hd, D), (D, H·hd)
	mlpNorm        *Param // (D): post_attention_layernorm
	gate, up, down *Param // (F, D), (F, D), (D, F)
}

// Llama is a Transformer++ language model (transformers' LlamaForCausalLM): embedding, NLayer
// pre-norm decoder layers
//
//	h ← h + o_proj(Attention(RoPE(q_proj(n)), RoPE(k_proj(n)), v_proj(n))),  n = RMSNorm(h; input_layernorm)
//	h ← h + down_proj(silu(gate_proj(n)) ⊙ up_proj(n)),                     n = RMSNorm(h; post_attention_layernorm)
//
// (causal grouped-query attention, internal/attention), a final RMSNorm and the LM head, tied to
// the embedding or not.
type Llama struct {
	cfg    Config
	emb    *Param // (V, D): model.embed_tokens.weight
	blocks []llamaBlock
	norm   *Param // (D): model.norm.weight
	head   *Param // (V, D): lm_head.weight; nil when tied
	params []*Param
}

// Config returns the model's configuration.
func (m *Llama) Config() Config { return m.cfg }

// Params lists every parameter once, in a fixed order: the embedding, layer by layer
// (input_layernorm, q, k, v, o projections, post_attention_layernorm, gate, up, down projections),
// the final norm, then lm_head when untied.
func (m *Llama) Params() []*Param { return m.params }

// NewLlama builds a model initialised as transformers does, deterministically from seed: every
// projection and the embedding (and an untied head) ~ N(0, init_std²), norm weights 1. Each
// parameter draws from its own SplitMix64 stream seeded by (seed, name).
func NewLlama(cfg Config, seed uint64) (*Llama, error) {
	if !cfg.IsTransformer() {
		return nil, fmt.Errorf("model config: arch %q is not %q", cfg.Arch, ArchTransformer)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := llamaLayout(cfg)
	m.allocate()
	for _, p := range m.params {
		if p.NoDecay { // the norms
			for i := range p.Value {
				p.Value[i] = 1
			}
			continue
		}
		r := newRNG(seed, p.Name)
		fillNormal(p.Value, r, cfg.InitStd)
	}
	return m, nil
}

func fillNormal(x []float32, r *rng.Rand, std float64) {
	for i := range x {
		x[i] = float32(std * r.Normal())
	}
}

// llamaLayout creates the parameter set of cfg: names, shapes and flags, without storage. The
// norm weights are NoDecay.
func llamaLayout(cfg Config) *Llama {
	D, V, F := cfg.DModel, cfg.PaddedVocab(), cfg.FF()
	Q, KV := cfg.NHead*cfg.HeadSize(), cfg.KVHeads()*cfg.HeadSize()
	m := &Llama{cfg: cfg}
	add := func(name string, noDecay bool, shape ...int) *Param {
		p := &Param{Name: name, Shape: shape, NoDecay: noDecay}
		m.params = append(m.params, p)
		return p
	}
	m.emb = add("model.embed_tokens.weight", false, V, D)
	m.blocks = make([]llamaBlock, cfg.NLayer)
	for i := range m.blocks {
		b := &m.blocks[i]
		pre := fmt.Sprintf("model.layers.%d.", i)
		b.attnNorm = add(pre+"input_layernorm.weight", true, D)
		b.q = add(pre+"self_attn.q_proj.weight", false, Q, D)
		b.k = add(pre+"self_attn.k_proj.weight", false, KV, D)
		b.v = add(pre+"self_attn.v_proj.weight", false, KV, D)
		b.o = add(pre+"self_attn.o_proj.weight", false, D, Q)
		b.mlpNorm = add(pre+"post_attention_layernorm.weight", true, D)
		b.gate = add(pre+"mlp.gate_proj.weight", false, F, D)
		b.up = add(pre+"mlp.up_proj.weight", false, F, D)
		b.down = add(pre+"mlp.down_proj.weight", false, D, F)
	}
	m.norm = add("model.norm.weight", true, D)
	if !cfg.TieEmbeddings {
		m.head = add("lm_head.weight", false, V, D)
	}
	return m
}

// allocate gives every parameter zeroed Value and Grad storage.
func (m *Llama) allocate() {
	for _, p := range m.params {
		p.Value = make([]float32, p.Size())
		p.Grad = make([]float32, p.Size())
	}
}
