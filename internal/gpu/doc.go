// Package gpu trains and runs Mamba language models (package layers) on an NVIDIA GPU through
// package cuda, computing what the CPU computes:
//
//	step      loss = CrossEntropy(RMSNorm_f(hⁿ)·Eᵀ, targets),  hˡ = hˡ⁻¹ + Mixerˡ(RMSNorm(hˡ⁻¹)),  g = ∂loss/∂θ
//	update    ḡ = (1/k)·Σ_j g_j over k micro-batches, s = min(1, clip/(‖ḡ‖ + 1e-6)), θ ← AdamW(θ, s·ḡ)
//	decode    one token per row through every block's recurrence (conv state, SSM state), then
//	          logits = RMSNorm_f(h)·Eᵀ
//
// # Executing the compiled graph
//
// Training runs the same Gorgonia graph as the CPU (layers.Model.DeviceGraph): an Executor walks its
// plan (autograd.Plan) in order and runs each step's device kernel, built from the step's
// backend-neutral spec by a cuda.Backend (kernel.Backend[cuda.Buffer]): forwards, each fused op's
// backward once at its first gradient step, with only the input gradients the plan needs, and the
// sums of gradients. Parameters and their gradients are bound to buffers the Trainer owns; every
// other value lives in one arena of device memory, planned before it is allocated, where a buffer is
// reused once its last reader has run. After the first step the whole step is captured into a CUDA
// graph and replayed (MAMBA_CUDA_GRAPH=0 keeps launching kernel by kernel).
//
// A Trainer keeps the parameters (float32 master weights), their gradients, the sums of accumulated
// micro-batches and AdamW's moments on the device: the optimizer is cuda.AdamW, which computes the
// global norm, the clip scale and the update as package optim does, operation for operation. A step
// copies the token ids and targets in and the loss (4 bytes) out; GradNorm copies the norm (8 bytes)
// out; parameters and moments come back only when asked (Pull, OptimizerState: for checkpoints,
// which are the files the CPU writes).
//
// # Precision
//
// The backend's precision (cuda.Precision) applies to the products only: fp32, tf32 (tensor cores,
// operands rounded to 10 mantissa bits) or bf16 (operands rounded to bfloat16 in a scratch buffer,
// float32 sums and results). Activations, gradients, the scan and its state, the norms, reductions,
// the loss and the optimizer are float32 in every precision.
package gpu
