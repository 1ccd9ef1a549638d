package layers

// FLOPs per trained token, forward and backward, for the model of c on sequences of seqLen
// tokens. One multiply-add is two FLOPs and a backward pass costs twice its forward pass.
//
// A Mamba:
//
//	6·N_mm                        the matrix products: N_mm = n_layer·(2E·D + (R+2N)·E + E·R + D·E) + V·D
//	                              (in_proj, x_proj, dt_proj, out_proj and the LM head; the embedding
//	                              lookup costs nothing)
//	+ 3·n_layer·7·E·N             the selective scan: per (channel, state) Δ·A, its exp, Δ·u·B,
//	                              Ā·h + b (2) and C·h (2) in the forward
//	+ 3·n_layer·2·K·E             the causal depthwise conv
//
// The first term is Kaplan's 6·N·D counted on the parameters that are multiplied (N_mm,
// which includes the tied LM head once) rather than on all parameters; the others are the
// work of the layers that are not matrix products. Norms, gates, the softmax and the
// optimizer are left out (each O(D) or O(E) per token, under 1% here). seqLen does not
// enter for Mamba: the scan is linear in the length.
//
// A Transformer++, with Q = n_head·head_dim and KV = n_kv_head·head_dim:
//
//	6·N_mm                        N_mm = n_layer·(D·(Q + 2·KV) + Q·D + 3·D·F) + V·D
//	                              (q, k, v, o, gate, up, down projections and the LM head, tied or not)
//	+ 3·n_layer·4·Q·(L+1)/2       the attention: per token and layer, q·k over ctx keys and the sum of
//	                              ctx value rows cost 2·Q·ctx FLOPs each in the forward; causally a token
//	                              sees ctx = (L+1)/2 keys on average
//
// which is 6·N_mm + 6·n_layer·Q·(L+1). The RMSNorms, the rotary embedding, the softmax's exps
// and SwiGLU's gate are left out (O(D), O(Q·ctx/head_dim) or O(F) per token).
func (c Config) FLOPsPerToken(seqLen int) float64 {
	if c.IsTransformer() {
		D, F, V, Q, KV := float64(c.DModel), float64(c.FF()), float64(c.PaddedVocab()), float64(c.NHead*c.HeadSize()), float64(c.KVHeads()*c.HeadSize())
		L := float64(c.NLayer)
		mm := L*(D*(Q+2*KV)+Q*D+3*D*F) + V*D
		return 6*mm + 6*L*Q*(float64(seqLen)+1)
	}
	D, E, N, R, K, V := float64(c.DModel), float64(c.DInner()), float64(c.DState), float64(c.Rank()), float64(c.DConv), float64(c.PaddedVocab())
	L := float64(c.NLayer)
	perLayer := 2*E*D + D*E
	if c.Selective {
		perLayer += (R+2*N)*E + E*R
	}
	mm := L*perLayer + V*D
	return 6*mm + 3*L*(7*E*N+2*K*E)
}
