package layers

// TrainingBytes estimates the memory, in bytes, that training this model on
// batch × seqLen tokens per step needs: 6 floats per parameter (the value, the
// gradient, the two AdamW moments and the graph's own gradient buffers) and,
// per token, what the graph keeps (see Compile's doc):
//
//	per layer: forward outputs 2·D + 6·E + 2·(R+2N)
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
	perLayer := 10*D + 13*E + 9*(R+2*N) + 2*N + E*N/64
	perToken := float64(c.NLayer)*perLayer + 4*D + 2*V
	return 4 * (6*float64(c.NumParams()) + 1.25*tokens*perToken)
}

// GenerationBytes estimates the memory, in bytes, that generating n tokens
// after a prompt of promptLen tokens in each of batch rows needs: the
// weights twice (the model and the file read to load it), the decoder's
// state, the prefill's buffers for the prompt,
//
//	Mamba, per layer and row: conv and SSM state E·(K−1) + E·N      per prompt token: 3·D + 7·E + 3·R + 5·N
//	Transformer++, per layer, row and token (prompt and new): the key/value cache 2·KV
//	                                                                  per prompt token: 4·D + 2·Q + 2·KV + 3·F
//
// and 32 bytes per new token (its id, and its text or samples when decoded),
// with a 25% margin. Like TrainingBytes it is computed in float64 without
// laying the model out, so any sizes give a number (+Inf at worst).
func (c Config) GenerationBytes(batch, promptLen, n int) float64 {
	rows, L := float64(batch), float64(promptLen)
	var state, prefill float64
	if c.IsTransformer() {
		D, F := float64(c.DModel), float64(c.FF())
		Q, KV := float64(c.NHead*c.HeadSize()), float64(c.KVHeads()*c.HeadSize())
		state = float64(c.NLayer) * rows * (L + float64(n)) * 2 * KV
		prefill = rows * L * (4*D + 2*Q + 2*KV + 3*F)
	} else {
		D, E, N, K, R := float64(c.DModel), float64(c.DInner()), float64(c.DState), float64(c.DConv), float64(c.Rank())
		state = float64(c.NLayer) * rows * (E*(K-1) + E*N)
		prefill = rows * L * (3*D + 7*E + 3*R + 5*N)
	}
	return 1.25 * (4*(2*float64(c.NumParams())+state+prefill) + 32*rows*float64(n))
}
