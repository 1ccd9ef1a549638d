// Package optim implements the optimizer of the paper's training recipe: AdamW with
// decoupled weight decay, global-norm gradient clipping, gradient accumulation over
// micro-batches and learning-rate schedules.
//
// AdamW, for parameter p with gradient g at update t = 1, 2, ... (Loshchilov & Hutter;
// the same arithmetic as torch.optim.AdamW):
//
//	g   = s·grad                         s = clip scale (below)
//	p  ← p·(1 − lr·λ)                    decoupled weight decay; λ = 0 for NoDecay params
//	m  ← β1·m + (1 − β1)·g
//	v  ← β2·v + (1 − β2)·g²
//	p  ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
//
// One fused pass per parameter does all four lines; no memory is allocated per step.
//
// Global-norm clipping (torch.nn.utils.clip_grad_norm_):
//
//	‖g‖ = √(Σ_params Σ_i grad_i²)        accumulated in float64
//	s   = min(1, c / (‖g‖ + 1e-6))       c = clip threshold, 0 disables clipping
//
// Gradient accumulation over k micro-batches averages their gradients, ḡ = (1/k)·Σ_j g_j,
// before clipping and the update.
//
// Schedules, for update index t = 0, 1, ..., T−1 (T = total updates, W = warmup):
//
//	warmup (all kinds)  t < W:  lr = peak·(t+1)/W
//	cosine              lr = min + ½(peak − min)(1 + cos(π·(t−W)/(T−W))), min after T
//	constant            lr = peak
//	wsd                 lr = peak until T−D, then linear to min over the last D updates
//
// Defaults are the paper's recipe (§E.2.1): β = (0.9, 0.95), λ = 0.1, c = 1.0, cosine to 1e-5.
//
// Determinism: parameters are cut into blocks of a fixed size; goroutines take whole
// blocks, and the squared-norm partials of the blocks are added in block order, so every
// result is bitwise the same for any number of workers (GOMAXPROCS).
package optim
