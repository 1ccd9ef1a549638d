// Package scan implements the selective scan of Mamba (S6), forward and backward, as a fast
// float32 kernel (Fast, from New) and a plain float64 sequential reference (Reference, from
// NewReference) with the same API (Kernel), and its one-token step for decoding (Stepper).
//
// # Equations
//
// For batch b, channel d, state n and time t (notation of shared/notes/mamba-reference.md §1):
//
//	Δ_t   = softplus(δ_t + bias_d)        (Options.Softplus; identity above 20; else Δ_t = δ_t + bias_d)
//	Ā_t,n = exp(Δ_t·A_d,n)
//	h_t,n = Ā_t,n·h_{t−1},n + Δ_t·B_t,n·u_t      h_{−1} = H0 (zero when nil)
//	y_t   = Σ_n C_t,n·h_t,n + D_d·u_t
//	out_t = y_t·silu(z_t)                   (without z: out_t = y_t)
//	last  = h_{L−1}
//
// B and C vary with time and are shared by all channels; A, D and bias are per channel.
//
// Packed documents (Inputs.Resets, (Batch, Len)): where a document starts at step t, the state
// entering the step is zero, h_{t−1} := 0 (at t = 0 H0 is then ignored), so h_t = Δ_t·B_t·u_t.
//
// # Backward
//
// With g_t = ∂ℒ/∂out_t and s = σ(z_t): ĝ_t = ∂ℒ/∂y_t = g_t·z_t·s and ∂ℒ/∂z_t = g_t·y_t·s·(1 + z_t·(1−s)).
// h_t reaches the loss through y_t and through h_{t+1} = Ā_{t+1}⊙h_t + …, so its adjoint
// λ_t = ∂ℒ/∂h_t obeys the reverse recurrence
//
//	λ_t = C_t·ĝ_t + Ā_{t+1}⊙λ_{t+1},   λ_{L−1} = C_{L−1}·ĝ_{L−1} + dlast,
//
// and, since h_t depends on u_t, Δ_t, B_t, A and h_{t−1} only through Ā_t⊙h_{t−1} + Δ_t·u_t·B_t
// (∂Ā_t/∂Δ_t = A⊙Ā_t, ∂Ā_t/∂A = Δ_t·Ā_t):
//
//	∂ℒ/∂C_t = Σ_d ĝ_t·h_t                 ∂ℒ/∂B_t = Σ_d λ_t·Δ_t·u_t
//	∂ℒ/∂u_t = D·ĝ_t + Δ_t·Σ_n λ_t·B_t     ∂ℒ/∂Δ_t = u_t·Σ_n λ_t·B_t + Σ_n A·λ_t·Ā_t·h_{t−1}
//	∂ℒ/∂A   = Σ_{b,t} Δ_t·λ_t⊙Ā_t⊙h_{t−1} ∂ℒ/∂D = Σ_{b,t} ĝ_t·u_t
//	∂ℒ/∂δ_t = ∂ℒ/∂Δ_t·σ(δ_t + bias)       ∂ℒ/∂bias = Σ_{b,t} ∂ℒ/∂δ_t
//	∂ℒ/∂H0  = Ā_0⊙λ_0
//
// Where a document starts at step t, h_t does not depend on h_{t−1}: the adjoint passed on to
// step t − 1 is zero (no gradient crosses the boundary, ∂ℒ/∂H0 = 0 when it is step 0), and the
// terms of ∂ℒ/∂A and ∂ℒ/∂Δ_t through Ā_t⊙h_{t−1} vanish. The kernels run the steps between
// two document starts as pieces of their own, each from the zero state.
//
// The kernels carry μ = Ā_{t+1}⊙λ_{t+1} (the gradient reaching h_t from later steps) rather
// than Ā_{t+1} and λ_{t+1} separately: it is all the next step needs, it crosses chunk
// boundaries as is, it starts as dlast, and after step 0 it is ∂ℒ/∂H0. Every gradient is
// checked against central finite differences of the float64 reference.
//
// # Decoding
//
// Stepper.Step is the recurrence for one token, for the recurrent decoder: it updates the
// states h (Batch, Channels, State) in place and writes out (Batch, Channels) for a range of
// channels [c0, c1), so that a decoder can split a step over cores (calls on disjoint ranges may
// run concurrently). It calls the functions Fast calls for a token in the same order, so a run
// of Steps from H0 gives Fast's outputs and final state bit for bit.
//
// # Layout
//
// Token-major: U, Delta, Z and out are (Batch, Len, Channels), B and C (Batch, Len, State).
// That is what the Mamba block's matmuls produce and consume (rows = Batch·Len tokens, x_proj
// gives [dt | B | C] per token), so no transposes surround the scan. mamba_ssm's
// (batch, dim, L) layout exists for its CUDA kernels' coalesced loads. Inside the kernel each
// chunk's token rows are read contiguously into (time, channel) tiles, and the inner loops run
// over State, which is contiguous in A, B, C and in the states (Batch, Channels, State).
//
// # Memory
//
// Forward keeps only the state entering each chunk of Options.Chunk steps (DefaultChunk 64):
// 4·Batch·Channels·State·ceil(Len/Chunk) bytes (SavedBytes), never a state per step. Backward
// walks the chunks last to first; per channel it recomputes the chunk's Ā and h into per-worker
// scratch (exp once per element), then runs the reverse pass over them. Per worker the scratch
// is about 4·Chunk·(9·W + 4·State) bytes, W the channels of a work item (≤ 64; ≈ 165 KiB at
// the defaults), mostly (time, channel) tiles of per-token values; the backward's partial sums
// of dB and dC take at most 64 KiB per (batch, block) item. All of it is allocated by New or on
// first use, and Forward and Backward do not allocate afterwards.
//
// # Parallel scheme and determinism
//
// Work items are fixed by the shape and Options.Chunk, never by the worker count, and write
// disjoint memory; sums across items are reduced afterwards in a fixed order. Results are
// therefore bitwise identical for every Options.Workers and GOMAXPROCS.
//
// Channel mode (the usual case): items are (batch, block of channels). Blocks are 64 channels,
// halved down to 16 while the shape gives fewer than 32 items, so that small batches keep many
// cores busy: the training batch (8, 512, 512, 16) has 64 items of 64 channels, batch 1 at
// 512 channels 32 items of 16. Forward runs each item over the whole sequence. Backward runs
// windows of chunks (as many as keep an item's partial dB and dC within 64 KiB; the whole
// sequence at L = 512): every item walks the window's chunks last to first, carrying its
// channels' adjoint, and keeps its block's partial dB and dC (its channels summed in channel
// order); then items of (batch, 16 steps) sum the blocks' parts in block order. dA, dD and
// d(bias) are summed per (batch, channel) over time and then over the batch in order. Neither
// the window nor the worker count changes a bit.
//
// Time mode, chosen when 64-channel blocks would give a single item (Batch = 1, Channels ≤ 64)
// and the sequence has several chunks: the sequence is cut into up to 64 segments of whole chunks
// and the scan becomes a chunked associative scan over the affine maps h ↦ a·h + b with
//
//	(a1, b1)∘(a2, b2) = (a1·a2, a2·b1 + b2).
//
// Forward: every segment computes its map from the zero state in parallel (a = exp(A·ΣΔ), or
// the constant map a = 0 when a document starts inside the segment); the maps are chained from
// H0 sequentially (Segments·Channels·State work); every segment is rerun in parallel from its
// true entering state. Backward does the same for the adjoint μ ↦ ∏Ā⊙μ + μ_own, right to left
// from dlast, and then runs the chunked backward of every segment in parallel. It costs about
// 1.5× the work of channel mode and divides it among all cores, for batch 1 and L in the
// millions.
//
// # Scalar and vector math
//
// No float64 in the hot loops. The elementary functions are internal/math32's: Ā_t = exp(Δ_t·A)
// for a chunk's steps (or a step's channels) by math32.ExpScaledRows, softplus and σ by its row
// functions. The loops of this package are linear: the recurrence h = Ā⊙h + Δu·B with
// y = C·h (recur), the reverse pass (scanReverse), the adjoint pass of time mode (adjoint) and
// the per-token gradient row (duDeltaRow). Where math32's path is AVX2 or AVX-512 (chosen at
// start-up from the CPU; the build tag purego leaves only Go) and State is a multiple of the
// vector width, they run in assembly (kernel_amd64.s), 8 or 16 states per instruction, one macro
// text for both widths; otherwise the Go loops of kernel.go, which are the specification. The
// paths differ in the last bits (fused multiply-adds, the tree of the sums over states); one
// call uses one path throughout, so results stay bitwise independent of the worker count. The
// token rows a chunk reads are strided pieces of (Batch, Len, Channels) tensors, which hardware
// prefetchers do not follow: the kernel prefetches the next chunk's rows while it computes.
//
// Measurements and the choices they led to are in README.md.
package scan
