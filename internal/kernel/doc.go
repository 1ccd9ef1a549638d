// Package kernel is the single implementation of every op's math in the
// Mamba model, graph-free, for training, generation and any device backend:
//
//	RMSNorm       y[r] = x[r] ⊙ w / sqrt((1/d)·Σ_j x[r,j]² + eps)                     x (rows, d), w (d)
//	Conv1d        c[b,t] = bias + Σ_{k<K} w[:,k] ⊙ x[b, t−(K−1)+k],  y = c or silu(c)   x before t = 0: 0 or a state
//	              (packed documents: x[b, s] = 0 for c[b,t] when a document starts in (s, t])
//	Gate          out = a ⊙ silu(g),  silu(g) = g·σ(g),  σ(g) = 1/(1 + e^{−g})
//	Embedding     y[r] = table[ids_r]
//	CrossEntropy  loss = (1/n)·Σ_{r: t_r ≠ −1} (logsumexp(x[r]) − x[r, t_r]),  n = #{r: t_r ≠ −1}
//	GEMM          C = op(A)·op(B)
//	Linear        y = x·w[lo:hi]ᵀ (+ bias[lo:hi]) (+ r)
//	Columns       y = x[:, lo:hi]
//	Add           y = a + b
//	Broadcast     y[r] = v
//	Scan          h_t = exp(Δ_t·A) ⊙ h_{t−1} + Δ_t·B_t·u_t,  y_t = (C_t·h_t + D ⊙ u_t) ⊙ silu(z_t),
//	              A = −exp(A_log),  Δ = softplus(δ + bias)                            (package scan)
//	              (packed documents: h_{t−1} = 0 where a document starts at t)
//
// with the gradients, given g = ∂L/∂y:
//
//	RMSNorm       dx = ρ·(g ⊙ w − x·ρ²·(1/d)·Σ_j g_j·w_j·x_j),  dw = Σ_rows g ⊙ x·ρ,  ρ = 1/sqrt(mean(x²) + eps)
//	Conv1d        dc = g ⊙ σ(c) ⊙ (1 + c ⊙ (1 − σ(c))) (silu),  dbias = Σ dc,
//	              dw[:,k] = Σ_t dc_t ⊙ x_{t−(K−1)+k},  dx_s = Σ_k dc_{s+(K−1)−k} ⊙ w[:,k]
//	Gate          da = g ⊙ silu(g'),  dg' = g ⊙ a ⊙ σ(g')·(1 + g'·(1 − σ(g')))       (g' the gate input)
//	Embedding     dtable[v] = Σ_{r: ids_r = v} g[r]
//	CrossEntropy  dx[r] = g·(softmax(x[r]) − onehot(t_r))/n                            (0 for ignored rows)
//	GEMM          dA = dC·op(B)ᵀ, dB = op(A)ᵀ·dC (transposed back for a transposed operand)
//	Linear        dx = g·w[lo:hi],  dw[lo:hi] = gᵀ·x,  dbias[lo:hi] = Σ_rows g,  dr = g
//	Columns       dx[:, lo:hi] = g, 0 elsewhere
//	Add           da = db = g
//	Broadcast     dv = Σ_r g[r]
//	Scan          the reverse adjoint scan of package scan,  dA_log = dA ⊙ A
//
// # Specs, kernels and backends
//
// A Spec is one op instance as a plain value: what it computes, its fixed
// shapes and every parameter that changes the math (RMSNorm{Rows, Dim, Eps},
// Linear{Rows, In, Out, Lo, Hi, Bias, Residual}, ...). A Backend turns a
// Spec into a Kernel over its buffer type: CPU over []float32 (the fast
// kernels), Reference over []float64 (plain loops written from the
// definitions, which the tests check CPU against, and finite differences
// check in turn). An op defined in another package joins these backends by
// implementing CPUSpec and RefSpec; a device backend adds a third
// implementation of the same specs. Kernel.Forward writes the output and keeps what Backward needs;
// Backward overwrites the input gradients it is given (nil ones are
// skipped). A kernel that is also an Accumulator (Linear, RMSNorm, Columns,
// Embedding) can add some input gradients to din instead (BackwardAdd): a
// graph executor then sums the gradients that meet at a node inside the
// backward of the later term, with no Add pass and no buffer of its own (the
// residual stream, [δ | B | C], the halves of in_proj, the tied embedding).
// Shapes are checked once, when the kernel is built, so neither
// can fail. Token ids and targets, set outside the graph each step, live in
// an IDs the Embedding and CrossEntropy specs point to; the document starts
// of packed sequences in a Resets the Conv1d and Scan specs point to.
//
// # Determinism and cores
//
// Every CPU kernel cuts its work into items fixed by the shape, never by the
// number of cores, runs them with package parallel and adds partial sums in
// item order, so results are bitwise the same for every GOMAXPROCS. Products
// are cut into about 32 items fixed by their shape (productCut): k into
// chunks of at least 512 first (weight gradients, whose k is the token
// count), then C into tiles; each item is one single-threaded BLAS call, and
// the chunks' products are added to C in chunk order afterwards (the first
// chunk adds to C when the product accumulates: sgemm's beta = 1). A kernel's
// backward runs the items of all its products and its small loops (bias
// sums, copies) as one parallel loop; the sums of per-item partial results
// (the conv's and RMSNorm's weight gradients) run in parallel over blocks of
// columns, each element over the items in order. The conv and the gate
// compute SiLU with math32's vector rows; the conv keeps nothing for its
// backward, which recomputes c and silu'(c). Once built, kernels allocate
// nothing.
//
// # BLAS
//
// BLAS loads OpenBLAS (libopenblas.so.0, through purego: no cgo) on first
// use, or falls back to gonum's pure-Go BLAS. Tiles call OpenBLAS's Fortran
// sgemm_, whose arguments are all pointers, so a call allocates nothing. When
// OpenBLAS runs a generic kernel (Prescott, Core2, ...) on a CPU with AVX2 or
// AVX-512 and OPENBLAS_CORETYPE is unset, BLAS loads a private copy with
// OPENBLAS_CORETYPE set from Go's CPU detection (SkylakeX or Haswell); if
// that fails, BLASInfo.Warning says so, for the program to print.
//
// # Rows
//
// The recurrent decoder calls the row functions the kernels use (RMSNormRow,
// ConvStep, GateRow, NegExp; SiLU is math32's vector row), so training and
// generation share their numerics, and DotRows for its products:
//
//	DotRows       y[r, j] (+)= x_r · w_j     x (rows, k), w (n, k)
//
// every output one sum in a fixed order (eight interleaved partial sums over
// k, added pairwise), computed by register tiles of 4 rows × 2 outputs (1 × 4
// for a single row) that read each weight row once for all the rows: an
// output does not depend on the other rows, on the tile nor on how the caller
// cuts w into blocks.
package kernel
