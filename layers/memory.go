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
// with a 25% margin for what the count leaves out (kernel scratch, the
// graph's bookkeeping). It is computed in float64, so any config gives a
// finite number: a caller can refuse a model before allocating it.
func (c Config) TrainingBytes(batch, seqLen int) float64 {
	D, E, N, R, V := float64(c.DModel), float64(c.DInner()), float64(c.DState), float64(c.Rank()), float64(c.PaddedVocab())
	perLayer := 10*D + 14*E + 9*(R+2*N) + 2*N + E*N/64
	perToken := float64(c.NLayer)*perLayer + 4*D + 2*V
	tokens := float64(batch) * float64(seqLen)
	return 4 * (6*float64(c.NumParams()) + 1.25*tokens*perToken)
}

// GenerationBytes estimates the memory, in bytes, that generating n tokens
// after a prompt of promptLen tokens in each of batch rows needs: the
// weights twice (the model and the file read to load it), the decoder's
// state, the prefill's buffers for the prompt,
//
//	per layer and row: conv and SSM state E·(K−1) + E·N, and the scan's  per prompt token: 3·D + 7·E + 3·R + 5·N
//
// and 32 bytes per new token (its id, and its text or samples when decoded),
// with a 25% margin. Like TrainingBytes it is computed in float64 without
// laying the model out, so any sizes give a number (+Inf at worst).
func (c Config) GenerationBytes(batch, promptLen, n int) float64 {
	D, E, N, K, R := float64(c.DModel), float64(c.DInner()), float64(c.DState), float64(c.DConv), float64(c.Rank())
	rows := float64(batch)
	state := float64(c.NLayer) * rows * (E*(K-1) + E*N)
	prefill := rows * float64(promptLen) * (3*D + 7*E + 3*R + 5*N)
	return 1.25 * (4*(2*float64(c.NumParams())+state+prefill) + 32*rows*float64(n))
}
