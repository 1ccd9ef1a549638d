// Package autograd holds the fused Gorgonia ops of the Mamba model, each with
// a hand-derived backward:
//
//	RMSNorm        y[r,j] = x[r,j]·w_j / sqrt((1/d)·Σ_k x[r,k]² + eps)              x (rows, d), w (d)
//	CausalConv1d   c[b,t,d] = bias_d + Σ_{k<K} w[d,k]·x[b,t−(K−1)+k,d],  y = c or silu(c) = c·σ(c)
//	Embedding      y[r] = table[ids_r]                                              table (V, d)
//	CrossEntropy   loss = (1/n)·Σ_{r: t_r≠−1} (logsumexp(x[r]) − x[r,t_r]),  n = #{r: t_r ≠ −1}
//	SelectiveScan  h_t = exp(Δ_t·A)⊙h_{t−1} + Δ_t·B_t·u_t,  out_t = (C_t·h_t + D·u_t)·silu(z_t)
//
// and their gradients:
//
//	RMSNorm        dx = r·(g⊙w − x·r²·(1/d)·Σ_j g_j·w_j·x_j),  dw = Σ_rows g⊙x·r,  r = 1/sqrt(mean(x²)+eps)
//	CausalConv1d   dc = dy·σ(c)·(1 + c·(1−σ(c))),  db = Σ dc,  dw[d,k] = Σ dc_t·x_{t−(K−1)+k},  dx_s = Σ_k dc_{s+(K−1)−k}·w_k
//	Embedding      dtable[v] = Σ_{r: ids_r = v} dy[r]                  (rows added in position order)
//	CrossEntropy   dx[r] = g·(softmax(x[r]) − onehot(t_r))/n           (0 for ignored rows)
//	SelectiveScan  the reverse adjoint scan of package scan
//
// Activations are token-major 2-D nodes (batch·L, features), row-major; ops
// that need the batch split take batch. Every op works in float32 graphs,
// where it runs a fast float32 kernel (parallel over fixed-size blocks, so the
// results are bitwise the same for every GOMAXPROCS), and in float64 graphs,
// where it runs a plain float64 reference kernel that the tests check the
// fast one against.
//
// # The fused-op pattern
//
// A Gorgonia node has one output, but one backward pass of a fused op yields
// the gradients of all its inputs. So the forward op's SymDiff makes one
// gradient node per input, all sharing one cache: the first of them to run in
// a step runs the backward kernel, which fills every input's gradient, and
// the others return their part. The cache recomputes when the forward op has
// run since, so the backward kernel runs exactly once per step. Each gradient
// op writes its input index into its hash, and each forward op instance a
// unique id, or Gorgonia would merge the nodes (and give every input the same
// gradient). Forward outputs and gradients live in buffers owned by the ops
// and reused every step; what a backward needs is kept apart from them,
// because the VM may overwrite a value once its last reader has run.
//
// Use a TapeMachine with gorgonia.Grad (the LispMachine is not supported):
// build and compile the graph once; each step Set the Ids, Let the inputs,
// RunAll, read the values you need and Reset. Node values are overwritten by
// the next run, so copy out what you keep.
//
// UseBLAS switches gorgonia's matrix products to OpenBLAS when it is
// installed; products of 2^21 multiply-adds or more are cut into four fixed
// blocks of rows (or columns) of the result that run as single-threaded
// OpenBLAS calls on up to GOMAXPROCS goroutines.
//
// # Speed
//
// Forward + backward of the float32 kernels at the benchmark model's shapes
// (8 × 512 = 4,096 tokens, d_model 256, d_inner 512, K 4, vocabulary 256),
// in ns per element of the main input (BenchmarkXxx/f32, 20 runs, two
// interleaved A/B rounds on the 2-core AVX2/FMA box while other work shared
// it, so ±40%), before and after σ(c) was kept by the conv and its
// multiply-adds went through mulAdd:
//
//	RMSNorm        4096×256     10–14 ns
//	CausalConv1d   4096×512     60–77 ns → 26–27 ns   (what is left is mostly the scalar exp of σ in the forward)
//	CrossEntropy   4096×256     29–55 ns              (two scalar exps per element)
//	Embedding      4096×256     2.3–7 ns per output element (2.4–7.3 ms per step)
//
// and OpenBLAS sgemm, (4096×256)·(256×1024): 57–85 GFLOP/s as one call,
// 100–136 GFLOP/s cut into blocks on two goroutines (BenchmarkSgemm).
package autograd
