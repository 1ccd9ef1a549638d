// Package autograd puts the kernels of package internal/kernel into Gorgonia
// graphs: each op is a thin adapter over one kernel spec, with the backward
// of that kernel as its gradient.
//
//	RMSNorm        y[r,j] = x[r,j]·w_j / sqrt((1/d)·Σ_k x[r,k]² + eps)              x (rows, d), w (d)
//	CausalConv1d   c[b,t,d] = bias_d + Σ_{k<K} w[d,k]·x[b,t−(K−1)+k,d],  y = c or silu(c)
//	Embedding      y[r] = table[ids_r]                                              table (V, d)
//	CrossEntropy   loss = (1/n)·Σ_{r: t_r≠−1} (logsumexp(x[r]) − x[r,t_r])
//	SelectiveScan  h_t = exp(Δ_t·A)⊙h_{t−1} + Δ_t·B_t·u_t,  out_t = (C_t·h_t + D·u_t)·silu(z_t),  A = −exp(A_log)
//	Linear         y = x·w[lo:hi]ᵀ (+ bias[lo:hi]) (+ residual)
//	Columns        y = x[:, lo:hi]
//	Add            y = a + b
//	Broadcast      y[r] = v
//	Gate           y = a ⊙ silu(g)
//	MatMul         y = op(a)·op(b)
//
// Their gradients are the kernels' (see package internal/kernel). Activations
// are token-major 2-D nodes (batch·L, features), row-major; ops that need the
// batch split take batch. A float32 graph runs the CPU kernels (bitwise the
// same results for every GOMAXPROCS), a float64 graph the reference kernels,
// which the tests check the fast ones against.
//
// # The fused-op pattern
//
// A Gorgonia node has one output, but one backward pass of a kernel yields
// the gradients of all its inputs. So the forward op's SymDiff makes one
// gradient node per input, all sharing one cache: the first of them to run in
// a step runs the backward kernel, which fills every input's gradient, and
// the others return their part. The cache recomputes when the forward op has
// run since, so the backward kernel runs exactly once per step. Each gradient
// op writes its input index into its hash, and each forward op instance a
// unique id, or Gorgonia would merge the nodes (and give every input the same
// gradient). Forward outputs and gradients live in buffers owned by the ops
// and reused every step; what a backward needs is kept inside the kernel,
// because an executor may overwrite a value once its last reader has run.
//
// Every forward op implements Forward (its kernel.Spec) and every gradient op
// Gradient (the spec, the input and the forward op), so that an executor for
// another device can walk a compiled graph and build its own kernels. Apply
// puts any spec into a graph, such as one defined in another package.
//
// # Running a graph
//
// Build the graph once, take gradients with gorgonia.Grad, then run it with a
// Machine: it orders the nodes the outputs need, runs each fused op's kernel,
// each backward once, only the input gradients that are needed, and the sums
// gorgonia.Grad inserts where gradients meet as kernel.Add; once warm a run
// allocates nothing. Plan lists its steps (with their specs) for other
// executors, and a Profile times each kind of op. Each step, Set the Ids and
// Run; values stay valid until the next run. The ops also run under
// gorgonia's TapeMachine (RunAll, then Reset), which allocates for its own
// bookkeeping.
package autograd
