// Package layers is the Mamba language model (Gu & Dao 2023) as transformers'
// MambaForCausalLM computes it, and the Transformer++ of the paper's
// comparisons as transformers' LlamaForCausalLM computes it: the float32
// training graphs, checkpoints in the transformers layout, and generation
// (recurrent for the Mamba, over a key/value cache for the Transformer++).
// Config.Arch chooses; NewLM and LoadLM are the one place that dispatches on
// it, and LM is what both models offer.
//
// For token ids s (batch × L), E = expand·d_model channels, state size N,
// conv width K and dt_rank R:
//
//	h⁰ = Emb[s]                                             (V, D) table, V padded to a multiple of 8
//	hˡ = hˡ⁻¹ + Mixerˡ(RMSNorm(hˡ⁻¹; wˡ))                   l = 1 … n_layer, residual in float32
//	logits = RMSNorm(hⁿ; w_f)·Embᵀ                          LM head tied to the embedding
//	loss = mean_{t: target_t ≠ −1} −log softmax(logits_t)[target_t]
//
//	RMSNorm(x; w) = x / √(mean(x²) + ε) ⊙ w
//
// and the mixer, for n = RMSNorm(h):
//
//	[x | z] = n·in_projᵀ                                    (E each)
//	u_t = silu(b + Σ_{k<K} w_k ⊙ x_{t−K+1+k})              causal depthwise conv, x_{<0} = 0
//	[δ | B | C] = u·x_projᵀ                                 (R, N, N): one product, split by copies
//	Δ = softplus(δ·dt_projᵀ + dt_bias),  A = −exp(A_log)
//	h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t,  y_t = C_t·h_t + D ⊙ u_t
//	out = (y ⊙ silu(z))·out_projᵀ                           added to h inside the product
//
// Every op is one of package autograd's, each a thin adapter over a kernel
// of package internal/kernel (the selective scan wraps package scan), so the
// training graph, the decoder and any device backend compute the same math.
//
// The Transformer++ (Llama) of width D, H query heads sharing KV key/value
// heads of hd channels, SwiGLU width F:
//
//	h⁰ = Emb[s]
//	h' = h + Attention(RoPE(n·W_qᵀ), RoPE(n·W_kᵀ), n·W_vᵀ)·W_oᵀ,   n = RMSNorm(h; input_layernorm)
//	hˡ = h' + (silu(n'·W_gateᵀ) ⊙ n'·W_upᵀ)·W_downᵀ,            n' = RMSNorm(h'; post_attention_layernorm)
//	logits = RMSNorm(hⁿ; w_f)·Wᵀ                               W = lm_head.weight, or Emb when tied
//
// with causal grouped-query attention (query head h reads key/value head
// h/(H/KV)), the rotary embedding of transformers (rotate_half, base
// rope_theta) folded into the attention op (attention.Spec: its backward
// rotates the gradients back), no biases. Parameters are named as
// transformers' state dict (model.embed_tokens.weight,
// model.layers.i.{input_layernorm, self_attn.{q,k,v,o}_proj,
// post_attention_layernorm, mlp.{gate,up,down}_proj}.weight, model.norm.weight,
// lm_head.weight when untied); NewLlama draws every matrix from N(0,
// init_std²) and sets the norms to 1. Its LlamaDecoder keeps, per layer, the
// rotated keys and the values of every position: Prefill runs the prompt
// through the training kernels (the flash attention forward), Step each new
// token through phases on a team of goroutines like the Mamba's, the
// attention over the cache in chunks combined in order (attention.Decoder).
//
// # Parameters
//
// Params lists every tensor under its transformers state-dict name:
// backbone.embeddings.weight, backbone.layers.i.norm.weight,
// backbone.layers.i.mixer.{in_proj.weight, conv1d.weight, conv1d.bias,
// x_proj.weight, dt_proj.weight, dt_proj.bias, A_log, D, out_proj.weight}
// (in_proj.bias and out_proj.bias with Config.Bias), backbone.norm_f.weight.
// NoDecay is set on A_log, D, the norm weights and every bias. New
// initialises as mamba_ssm does (see New) from a seed, with a SplitMix64
// stream per parameter.
//
// Config.Selective = false is the LTI ablation (an S4D-like layer of the
// same width): Δ, B and C no longer depend on the input. x_proj and
// dt_proj.weight are dropped; Δ = softplus(dt_proj.bias) per channel, and
// B and C are learned vectors backbone.layers.i.mixer.B and
// backbone.layers.i.mixer.C of size N (B starts at 1, C at N(0, 1/N)),
// both NoDecay.
//
// # Training
//
// Compile builds the float32 graph for one (batch, L) shape once, with the
// gradient of the loss with respect to every parameter (gorgonia.Grad), and
// an autograd.Machine that runs it; Step and Eval only set the ids and run
// it, allocating nothing. The graph's parameter tensors alias Param.Value,
// so an optimizer must update Value in place. Step overwrites every
// Param.Grad. Profile times each kind of op of the training graph.
//
// # Checkpoints
//
// Load and Save read and write a transformers model directory: config.json
// with MambaConfig's field names, and model.safetensors (F32, F64, BF16 or
// F16; the tied lm_head.weight left out). A checkpoint's vocabulary is kept
// as stored; padding applies to configs built from scratch.
//
// # Recurrent inference
//
// A Decoder keeps, per block, the last K−1 conv inputs (K−1 × E) and the
// SSM state (E × N) of every row: each token costs the same whatever its
// position. Prefill runs a chunk of tokens through the training graph's
// kernels, the chunked parallel scan included, and hands its final state to
// Step. Step runs each block in four short phases on a persistent team of
// goroutines (parallel.Team): blocks of channels for in_proj and the conv
// step, blocks of x_proj rows, blocks of channels for dt_proj and the scan
// step (scan.Stepper, on the state in place), blocks of out_proj rows. Each
// phase runs on as many members as its work needs, from a cost model of its
// weights, multiply-adds and scan elements: a small model's step stays on a
// few cores, whose caches keep the same weights token after token; a wide
// one spreads over all. The products are kernel.DotRows: every weight row is
// read once per token for all the rows of the batch, and every output is
// summed in one fixed order, so nothing is reduced across blocks and a row's
// logits depend neither on the number of cores nor on the other rows of the
// batch. RMSNorm, the conv step, SiLU and A = −exp(A_log) are the training
// kernels' own row functions.
// Generate adds greedy, temperature, top-k and top-p sampling, seeded;
// Close stops a decoder's goroutines.
//
// # Memory
//
// A training step keeps, per token and per layer, the block's activations
// — RMSNorm output, x, z, conv output, [δ | B | C] and its three parts, Δ,
// the scan output and the block's output (the residual sum, computed by the
// out_proj product): 2·D + 5·E + 2·(R + 2·N) floats, measured 3,360 bytes
// for d_model 64 (TestActivationMemory) — plus the scan's chunk-boundary
// states, E·N floats every 64 tokens. The conv kernel keeps nothing: its
// backward recomputes the pre-activation and its SiLU derivative. Nothing of
// size E·N per token is kept: the scan recomputes its states in the
// backward pass.
//
// # Speed
//
// BenchmarkTrainStep and BenchmarkDecode time the benchmark model
// (configs/bench.json); train bench reports tokens/s, MFU and a per-op
// breakdown, and experiments/bench compares them with PyTorch.
package layers
