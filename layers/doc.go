// Package layers is the Mamba language model (Gu & Dao 2023) as transformers'
// MambaForCausalLM computes it: the float32 training graph, checkpoints in
// the transformers layout, and recurrent generation.
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
//	out = (y ⊙ silu(z))·out_projᵀ
//
// The selective scan runs in the scan package (through autograd's
// SelectiveScan op); RMSNorm, the conv, the embedding and the cross-entropy
// are autograd's fused ops; the projections are this package's linear op
// (x·wᵀ by one GEMM with hand-written backward).
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
// gradient of the loss with respect to every parameter (gorgonia
// TapeMachine + Grad); Step and Eval only set the ids and run the tape.
// The graph's parameter tensors alias Param.Value, so an optimizer must
// update Value in place. Step overwrites every Param.Grad. Call
// autograd.UseBLAS once at start-up: the projections and the decoder
// multiply through gorgonia's current BLAS.
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
// A Decoder keeps, per block, the last K conv inputs (E × K) and the SSM
// state (E × N) of every row: each token costs the same whatever its
// position. Prefill runs a chunk of tokens through the parallel scan and
// hands its final state to Step; Generate adds greedy, temperature, top-k
// and top-p sampling, seeded.
//
// # Memory
//
// A training step keeps, per token and per layer, the block's activations
// on the tape — RMSNorm output, x, z, conv output, [δ | B | C] and its
// three parts, Δ, the scan output, out_proj output and the residual sum:
// 3·D + 5·E + 2·(R + 2·N) floats, measured 13,696 bytes for d_model 256
// (E 512, R 16, N 16) and 3,616 bytes for d_model 64
// (TestActivationMemory) — plus σ of the conv's pre-activation, kept by the
// conv op for its backward (E floats, 2,048 bytes at d_model 256), plus the
// scan's chunk-boundary states, E·N floats every 64 tokens (512 bytes per
// token at d_model 256): 16,256 bytes per token per layer in all at
// d_model 256. Nothing of size E·N per token is kept: the scan recomputes
// its states in the backward pass. Everything the graph retains between
// steps (activation gradients and op buffers included) measured about
// 50,000 bytes per token per layer at d_model 256, about 24 floats per
// channel.
//
// # Speed
//
// On the quiet 2-core dev box (2026-11-29, OpenBLAS, -benchtime 8x, two
// runs): BenchmarkTrainStep 3,291–3,359 tokens/s (1.22–1.24 s per 4,096-token
// step, MFU 26% of the measured sgemm peak); BenchmarkDecode 439 tokens/s at
// batch 1 and 1,147 at batch 16; BenchmarkDecodeAt 2.16, 2.36 and 1.98 ms
// per token at positions 1, 1,000 and 100,000 (flat: the state does not
// grow). On a 16-core host (same binary, OpenBLAS) BenchmarkTrainStep ran
// at 7,558 tokens/s with GOMAXPROCS 2, 14,145 with 8 and 13,972 with 16:
// it stops scaling past 8 (the products are cut into 4 blocks). A PyTorch
// Transformer++ of the same size trains at 39,000 tokens/s on 16 threads,
// transformers' MambaForCausalLM at 64. How the training step got there:
//
// BenchmarkTrainStep (vocabulary 256, d_model 256, 4 layers, batch 8 × L
// 512 = 4,096 tokens per step) on the 2-core AVX2/FMA box, measured as
// five interleaved A/B runs of the two test binaries (same scan package)
// while other engineers' jobs left about half of the second core free
// (load 2.0–2.9):
//
//	before (one single-threaded OpenBLAS call per product, scalar conv
//	with an exp in forward and backward, x_proj as three products,
//	gorgonia's Add for the residual)
//	    2,010–2,380 tokens/s, median 2,270 (1.80 s per step)
//	after (products cut into blocks on both cores, conv with σ kept and
//	vectorised multiply-adds, x_proj as one product, residual op with
//	its own buffer)
//	    3,100–3,350 tokens/s, median 3,170 (1.29 s per step), +40%
//
// with 10% less CPU per run. Under heavier load (≈ one core free) the two
// were within noise of each other (medians 1,620 and 1,970 over eight
// pairs). The matrix products cost 6·1,769,472 = 10.6 MFLOP per token,
// 43.5 GFLOP per step; the machine's measured sgemm peak is 136 GFLOP/s on
// two goroutines (85 on one; autograd's BenchmarkSgemm), so the MFU went
// from 18% to 25% (medians). A PyTorch Transformer++ of the same size
// trains at 39,000 tokens/s on 16 CPU threads.
//
// Where a step goes (pprof, CPU seconds per step, after): the selective
// scan 1.24 (50%), the products 0.91 (37%; 0.80 before, when they ran on
// one core), the conv 0.22 (9%; 0.47 before), RMSNorm 0.04, the
// cross-entropy 0.03, gorgonia's gradient additions 0.03, the embedding
// under 0.01. A step allocates 0.6 MB (17.5 MB before, when gorgonia's Add
// allocated the residual sum each step).
package layers
