package layers

import (
	"gorgonia.org/gorgonia"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/internal/attention"
)

// Compile builds the float32 training graph for batches of batch sequences of seqLen tokens, and
// the gradient of the loss with respect to every parameter, as Model.Compile does.
func (m *Llama) Compile(batch, seqLen int) (*Trainer, error) { return compile(m, batch, seqLen) }

// logits is the Transformer++:
//
//	h⁰ = E[ids]
//	hˡ = hˡ⁻¹ + Blockˡ(hˡ⁻¹)      l = 1..n_layer
//	logits = RMSNorm_f(hⁿ)·Wᵀ     W = lm_head.weight, or E when tied
func (m *Llama) logits(b *builder) *gorgonia.Node {
	h := b.do(autograd.Embedding(b.ids, b.node[m.emb]))
	for l := range m.blocks {
		h = b.block(func() *gorgonia.Node { return b.llamaBlock(&m.blocks[l], h) })
	}
	hf := b.do(autograd.RMSNorm(h, b.node[m.norm], m.cfg.NormEps))
	head := m.emb
	if m.head != nil {
		head = m.head
	}
	return b.do(autograd.Linear(hf, b.node[head], nil, nil, 0, m.cfg.PaddedVocab()))
}

// llamaBlock is one decoder layer, two pre-norm residual branches:
//
//	n = RMSNorm(h; input_layernorm)
//	q, k, v = n·q_projᵀ, n·k_projᵀ, n·v_projᵀ              three products
//	a = Attention(RoPE(q), RoPE(k), v)                    causal, grouped heads (attention.Spec)
//	h' = h + a·o_projᵀ                                    the residual added in the product
//	n' = RMSNorm(h'; post_attention_layernorm)
//	h' + (silu(n'·gate_projᵀ) ⊙ n'·up_projᵀ)·down_projᵀ   SwiGLU (kernel.Gate), residual in the product
func (b *builder) llamaBlock(p *llamaBlock, h *gorgonia.Node) *gorgonia.Node {
	if b.err != nil {
		return nil
	}
	c := b.cfg
	D, F, hd := c.DModel, c.FF(), c.HeadSize()
	Q, KV := c.NHead*hd, c.KVHeads()*hd
	n := b.do(autograd.RMSNorm(h, b.node[p.attnNorm], c.NormEps))
	q := b.do(autograd.Linear(n, b.node[p.q], nil, nil, 0, Q))
	k := b.do(autograd.Linear(n, b.node[p.k], nil, nil, 0, KV))
	v := b.do(autograd.Linear(n, b.node[p.v], nil, nil, 0, KV))
	if b.err != nil {
		return nil
	}
	spec := attention.Spec{Batch: b.batch, Len: b.rows / b.batch, Heads: c.NHead, KVHeads: c.KVHeads(), HeadDim: hd, RopeTheta: c.RopeTheta, Resets: b.resets}
	a := b.do(autograd.Apply(spec, q, k, v))
	h = b.do(autograd.Linear(a, b.node[p.o], nil, h, 0, D))
	n = b.do(autograd.RMSNorm(h, b.node[p.mlpNorm], c.NormEps))
	g := b.do(autograd.Linear(n, b.node[p.gate], nil, nil, 0, F))
	u := b.do(autograd.Linear(n, b.node[p.up], nil, nil, 0, F))
	y := b.do(autograd.Gate(u, g))
	return b.do(autograd.Linear(y, b.node[p.down], nil, h, 0, D))
}
