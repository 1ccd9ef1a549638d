package layers

// TrainingBytes estimates the memory, in bytes, that training this model on
// batch × seqLen tokens per step needs: 6 floats per parameter (the value, the
// gradient, the two AdamW moments and the graph's own gradient buffers) and,
// per token, what the graph keeps (see Compile's doc):
//
//	per layer: forward outputs 2·D + 7·E + 2·(R+2N) (σ of the conv included)
//	           + input gradients 8·D + 7·E + 7·(R+2N) + 2·N
//	           + the scan's saved states, E·N/64
//	head:      embedding and norm outputs and gradients 4·D, logits and their gradient 2·V
//
// for a Mamba, and for a Transformer++ (Q = n_head·head_dim, KV = n_kv_head·head_dim, H = n_head)
//
//	per layer: forward outputs 4·D + 2·Q + 2·KV + 3·F (norms, q, k, v, attention, residuals, SwiGLU)
//	           + what the attention keeps: the rotated q and k, its output and log-sum-exps, 2·Q + KV + H
//	           + input gradients 7·D + 2·Q + 2·KV + 3·F, gradient sums 5·D, the backward's D_i, H
//	head:      as the Mamba's
//
// with a 25% margin for what the count leaves out (kernel scratch, the
// graph's bookkeeping). It is computed in float64, so any config gives a
// finite number: a caller can refuse a model before allocating it.
func (c Config) TrainingBytes(batch, seqLen int) float64 {
	tokens := float64(batch) * float64(seqLen)
	if c.IsTransformer() {
		D, F, V := float64(c.DModel), float64(c.FF()), float64(c.PaddedVocab())
		H, Q, KV := float64(c.NHead), float64(c.NHead*c.HeadSize()), float64(c.KVHeads()*c.HeadSize())
		perLayer := 16*D + 6*Q + 5*KV + 6*F + 2*H
		perToken := float64(c.NLayer)*perLayer + 4*D + 2*V
		return 4 * (6*float64(c.NumParams()) + 1.25*tokens*perToken)
	}
	D, E, N, R, V := float64(c.DModel), float64(c.DInner()), float64(c.DState), float64(c.Rank()), float64(c.PaddedVocab())
	perLayer := 10*D + 14*E + 9*(R+2*N) + 2*N + E*N/64
	perToken := float64(c.NLayer)*perLayer + 4*D + 2*V
	return 4 * (6*float64(c.NumParams()) + 1.25*tokens*perToken)
}
