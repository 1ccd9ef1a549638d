// Package cuda runs Mamba's training kernels on an NVIDIA GPU from pure Go: the CUDA driver API
// (libcuda.so.1) and cuBLAS are called through purego, with no cgo, and the kernels are CUDA C
// compiled ahead of time to PTX and an sm_90 cubin that the binary embeds (package kernels). A user
// needs the NVIDIA driver and cuBLAS, nothing else: no toolkit, no compiler.
//
// # What runs on the device
//
// Layouts are those of package scan and the model: token-major (Batch, Len, Channels) activations,
// B and C (Batch, Len, State), row-major weights; float32 unless a name says bf16. Every op takes
// device Buffers, validates their sizes in Go and returns an error; the kernels below cannot fail.
//
//	Scan          h_t = exp(Δ_t·A)⊙h_{t−1} + Δ_t·u_t·B_t, y_t = C_t·h_t + D·u_t, out_t = y_t·silu(z_t),
//	              Δ_t = softplus(δ_t + bias) (or δ_t + bias), A given or −exp(A_log), h_{−1} = H0,
//	              a reset mask zeroing h_{t−1} at document starts; forward and backward (kernels/scan.cu)
//	RMSNorm       y = x/sqrt(mean(x²) + eps)⊙w per row                              (kernels/norm.cu)
//	Conv1d        y = silu(b + Σ_k w_k·x_{t−K+1+k}) depthwise, causal, optional reset (kernels/conv.cu)
//	Gate, Add     y = x⊙silu(z); y = a + b                                   (kernels/elementwise.cu)
//	Columns       y = x[:, lo:hi] and its zero-padded gradient                (kernels/elementwise.cu)
//	Embedding     y_r = table[ids_r]; dtable_v = Σ_{r: ids_r = v} dy_r, rows in position order
//	CrossEntropy  mean over counted rows of logsumexp(x_r) − x_{r,t_r}, targets −1 ignored (kernels/embed.cu)
//	Linear        y = x·w[lo:hi]ᵀ (+ b[lo:hi]) (+ r) through cuBLAS; GEMM op(A)·op(B); in float32, TF32
//	              or bfloat16 operands with float32 sums (Precision)
//	Broadcast     y[r] = v, its gradient a column sum
//	AdamW         optim.AdamW's update and float64 gradient norm, operation for operation (kernels/adamw.cu)
//	BlockStep     one token through a block for generation: the conv step from its state, then Δ, the
//	              scan's step from its state and the gate (kernels/decode.cu)
//
// The backward derivations are comments beside the kernels.
//
// # The backend of the kernel layer
//
// Backend (NewBackend) builds the device kernel of every spec of package internal/kernel, the third
// implementation of each op beside the CPU's and the float64 reference (kernel.Backend[Buffer]), in
// one Precision: FP32, TF32 (the tensor cores on float32 operands rounded to 10 mantissa bits) or BF16
// (both operands of every product rounded to bfloat16 into a scratch buffer shared by the backend's
// kernels, float32 sums into float32 results). Only the products change with the precision. The
// kernels' methods cannot fail (kernel.Kernel): a failed launch is kept by the Device (Err, Sync). A
// kernel that reads state set on the host each step (token ids, targets, packed documents' starts)
// is Staged: its Stage copies that state in, before the kernel runs or a captured graph replays it;
// the starts are copied once per holder and only when they change. Package internal/gpu runs whole
// graphs with it.
//
// # Determinism
//
// No kernel uses floating-point atomics. Every sum over threads or blocks is a fixed butterfly or a
// per-block partial added by a second kernel in block order, so a run's results are bitwise equal to
// any other run's on the same GPU model; AdamW's are bitwise equal to package optim's on the CPU.
//
// # The selective scan
//
// A block owns 32 channels of one sequence (one per lane, so token rows load coalesced) and G warps
// (the power of two with 4·G ≥ N; one kernel per G), each holding 4 states of every channel in
// registers and walking time in order. Per-token values (Δ, Δ·u, the gate) are computed once per
// (step, channel) into shared-memory tiles; B_t and C_t are read from shared memory by all lanes at
// once. Each tile's global loads are issued into registers while the previous tile's recurrence
// runs, so that their latency hides behind it (ScanOptions.Serial turns this off, for measuring). The forward saves only the state entering
// each segment of S steps (S = 128 for N ≤ 16). The backward walks the segments from the last:
// it reruns a segment to keep the state of every 8th step in shared memory, then for each group of
// 8 steps from the last recomputes the 8 states and exp(Δ·A) in registers and runs the adjoint
// recurrence over them. Sums over the states are warp partials added in shared memory; sums over
// the 32 channels (dB, dC) are warp butterflies written per block and added over blocks in order
// by a second kernel, as are dA, dD and d(bias) over the batch. N ≤ 64.
//
// # Libraries
//
// Open finds libcuda.so.1 through the dynamic loader, then in /usr/local/nvidia/lib64 and the
// distributions' library folders, and cuBLAS (libcublas.so.13, .12 or .11) through the loader, the
// CUDA toolkit's folders ($CUDA_HOME, /usr/local/cuda*) and the nvidia-cublas Python wheels
// (site-packages/nvidia/cu13/lib, nvidia/cublas/lib). MAMBA_CUDA_LIB and MAMBA_CUBLAS_LIB name the
// files (or their folders) instead. Without a driver Open's error wraps ErrNoDriver ("cuda: no NVIDIA
// driver (libcuda.so.1 not found …)"), without a GPU ErrNoDevice ("cuda: no GPU (…)"), without cuBLAS
// ErrNoBLAS. On a compute capability 9.0 GPU the cubin is loaded, elsewhere the PTX, which the driver
// compiles for the GPU at hand (compute capability 9.0 or later; MAMBA_CUDA_PTX=1 forces the PTX).
//
// # Tests
//
// Tests whose names contain CUDA need a GPU: without one they are skipped with the reason, and with
// MAMBA_CUDA_REQUIRE=1 they fail instead. gpucheck.sh runs them, the GPU tests of internal/gpu and
// train, train bench --device cuda, compute-sanitizer and the benchmarks on a GPU host in one call. Without a GPU, TestHostEmulator compiles the same kernel sources as host C++ into a
// stand-in libcuda.so.1 and libcublas (emu/, package emulator) and runs the CUDA tests against them
// through the real Go bindings (MAMBA_CUDA_EMU_RUN narrows the selection).
package cuda
