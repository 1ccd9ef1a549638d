// Package attention is the causal self-attention of a Transformer++ (transformers' Llama):
// grouped-query heads, packed documents, rotary position embeddings, a training kernel that keeps
// no L×L matrix, and a key/value-cache decode step.
//
// For each sequence b, query head h and key/value head g = ⌊h/G⌋ (G = Heads/KVHeads query heads
// share one key/value head, transformers' repeat_kv), with head size d and c = 1/√d:
//
//	s_ij = c·q_i·k_j                                  j ∈ V(i) = [start(i), i]
//	P_ij = exp(s_ij − LSE_i),  LSE_i = log Σ_{j∈V(i)} exp(s_ij)
//	o_i  = Σ_{j∈V(i)} P_ij v_j
//
// where start(i) is 0, or with packed documents the position of the first token of i's
// document: a query sees the keys of its own document up to itself. The gradients, for an
// upstream dO (derived beside Flash.kvItem):
//
//	D_i  = dO_i·o_i
//	dv_j = Σ_i P_ij dO_i                   summed over the G query heads of the group
//	ds_ij = P_ij (dO_i·v_j − D_i)
//	dq_i = c Σ_j ds_ij k_j,  dk_j = c Σ_i ds_ij q_i   (dk summed over the group)
//
// # Layout
//
// Token-major, as in the rest of the project: row b·L + t is token t of sequence b. Q and the
// output are (Batch·L, Heads·d), K and V (Batch·L, KVHeads·d); head h of a row is its columns
// [h·d, (h+1)·d). The log-sum-exps are (Batch·L, Heads). Document resets are (Batch·L) bytes,
// non-zero on the first token of a document (data.Batch.Resets).
//
// # Kernels
//
// Flash (float32) is FlashAttention-2 on tiles of T = 64 query rows × T key rows. The forward
// runs one item per (query tile, b, h): Q is transposed once into a d×T scratch tile, then for
// each key tile up to the diagonal the transposed scores Sᵀ = c·K Qᵀ come from one small product,
// the online softmax runs along contiguous rows (running max m and sum l per query, the
// accumulated output rescaled by exp(m_old − m_new)) and P V is accumulated; the item writes
// o_i = A_i/l_i and LSE_i = m_i + log l_i, and nothing else. The backward computes every D_i, then
// recomputes P tile by tile from LSE in two passes that own their sums: one item per (key tile,
// b, g) walks the group's heads and then the query tiles from the diagonal on, in that fixed
// order, for dK and dV; one item per (query tile, b, h) walks its key tiles for dQ. No sum
// crosses items, so there are no atomics and no reduction, and results are bitwise the same for
// any number of workers (internal/parallel). Every inner loop is a product of tiles (mulAdd: the
// pure-Go loop, or AVX2/FMA or AVX-512 assembly chosen at start-up, see tile_amd64.go; the purego
// build tag keeps the pure-Go loops), a row of exps (math32's vector rows) or an
// elementwise pass over contiguous rows. Items with the most work (the last query tiles, the
// first key tiles) come first. Once built and warm, a call allocates nothing.
//
// Reference (float64) materialises the L×L scores with −∞ at the hidden keys, takes the row
// softmax and multiplies; its backward writes the softmax Jacobian out. It shares none of
// Flash's arithmetic.
//
// # Memory
//
// Between Forward and Backward, Flash keeps 4·Heads bytes per token (the log-sum-exps) beside
// the output the caller holds (4·Heads·d bytes per token). Backward first computes every D_i into
// a scratch of another 4·Heads bytes per token, so that the two passes read it instead of
// recomputing it per tile pair. The other scratch is a few T×T and T×d tiles per worker,
// whatever L. TestSavedMemoryPerToken measures both.
//
// # Decoding
//
// Decoder.Step attends one new query row per sequence, at position n−1, to the first n positions
// of a key/value cache (Batch, capacity, KVHeads·d), with the same float32 exp and tile loops;
// the cache is cut into chunks of DecodeChunk keys run in parallel and combined in order
// (flash-decoding). DecodeReference is its float64 twin.
//
// # Rotary embeddings
//
// Rope rotates channel pairs (i, i + d/2) of every head by p·θ^(−2i/d) at position p, with
// transformers' float32 tables; Backward rotates by the opposite angle. Positions gives each
// token its position in its document.
package attention
