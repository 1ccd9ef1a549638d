// Causal depthwise convolution over time, token-major x (batch, len, ch), w (ch, K), bias (ch):
//   c[b,t,d] = bias_d + Σ_{k<K} w[d,k]·x[b, t−(K−1)+k, d]   (x = 0 before t = 0, and before a reset)
//   y = silu(c) = c·σ(c) with SiLU, else y = c
// w[d,K−1] multiplies the current step (PyTorch's Conv1d, a cross-correlation, with K−1 steps of
// left padding). With a reset mask, a step sees no input from before the last document start at or
// before it. Backward, with dc = dy·σ(c)·(1 + c·(1−σ(c))) (dc = dy without SiLU):
//   dx[b,s,d] = Σ_k dc[b, s+(K−1)−k, d]·w[d,k]   (terms past the end, or across a reset, dropped)
//   dw[d,k]   = Σ_{b,t} dc[b,t,d]·x[b, t−(K−1)+k, d]       db_d = Σ_{b,t} dc[b,t,d]
// dc goes through a scratch tensor; dw and db are partials over blocks of p.steps steps (chosen on the
// host so that there are about 128 blocks or fewer) added in order by sum_parts.
#include "common.cuh"

#define CONV_KMAX 16

struct ConvParams {
  const float *x, *w, *bias, *dy;
  const uint8_t* reset;
  float *y, *dc, *dx, *partw, *partb;
  int batch, len, ch, k, silu, steps;  // steps: the time steps of one partial of dw and db
};
static_assert(sizeof(ConvParams) == 104, "ConvParams layout (see conv.go)");

// first_input returns the first time step that t may read: its document's start with a reset mask.
__device__ __forceinline__ int first_input(const ConvParams& p, int b, int t) {
  int lo = max(0, t - (p.k - 1));
  if (p.reset)
    for (int s = t; s > lo; s--)
      if (p.reset[(size_t)b * p.len + s]) return s;
  return lo;
}

__device__ __forceinline__ float conv_pre(const ConvParams& p, int b, int t, int d) {
  float c = p.bias ? p.bias[d] : 0.f;
  const int lo = first_input(p, b, t);
  for (int j = lo - t + p.k - 1; j < p.k; j++)
    c = fmaf(p.w[d * p.k + j], p.x[((size_t)b * p.len + t - (p.k - 1) + j) * p.ch + d], c);
  return c;
}

// conv_rows runs f(b, t, d, e) for element e = ((b·len + t)·ch + d) on grid (⌈ch/blockDim⌉,
// rows'): a thread per channel d, a stride of gridDim.y over the rows (b, t). A row's b and t are
// divided out once per row in 32 bits (rows and channels fit in int: sizeLimit in ops.go), not per
// element in 64.
template <class F>
__device__ __forceinline__ void conv_rows(const ConvParams& p, F f) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x;
  if (d >= p.ch) return;
  for (int row = blockIdx.y; row < p.batch * p.len; row += gridDim.y) {
    const int b = row / p.len;
    f(b, row - b * p.len, d, (size_t)row * p.ch + d);
  }
}

extern "C" __global__ void conv_fwd(const ConvParams p) {
  conv_rows(p, [&](int b, int t, int d, size_t e) {
    float c = conv_pre(p, b, t, d);
    if (p.silu) c = c * sigmoidf(c);
    p.y[e] = c;
  });
}

// dc = ∂L/∂c into p.dc.
extern "C" __global__ void conv_bwd_dc(const ConvParams p) {
  conv_rows(p, [&](int b, int t, int d, size_t e) {
    float g = p.dy[e];
    if (p.silu) {
      const float c = conv_pre(p, b, t, d);
      const float s = sigmoidf(c);
      g = g * s * (1.f + c * (1.f - s));
    }
    p.dc[e] = g;
  });
}

// dx from dc: x_s, at row (b, s), feeds the steps t = s + (K−1) − j through tap j, up to the end
// of the sequence and the next document start after s (a step at or past it does not see x_s).
extern "C" __global__ void conv_bwd_dx(const ConvParams p) {
  conv_rows(p, [&](int b, int s, int d, size_t e) {
    const size_t row0 = (size_t)b * p.len;
    float acc = 0.f;
    for (int j = p.k - 1; j >= 0; j--) {
      const int t = s + (p.k - 1) - j;
      if (t >= p.len || (t > s && p.reset && p.reset[row0 + t])) break;
      acc = fmaf(p.dc[(row0 + t) * p.ch + d], p.w[d * p.k + j], acc);
    }
    p.dx[e] = acc;
  });
}

// Partials of dw and db over blocks of p.steps steps of one sequence: grid (ceil(ch/128),
// batch·ceil(len/steps)), block 128; partw[blk, d·K + j], partb[blk, d]. dw_part<K> unrolls the
// taps of a width K known when compiled (K = CONV_KMAX: any width p.k up to it). The window of step
// t starts at max(0, t − (K−1), start), start the last document start at or before t, kept as t
// advances (first_input's answer without its search).
template <int K>
__device__ __forceinline__ void dw_part(const ConvParams& p) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x;
  if (d >= p.ch) return;
  const int k = K == CONV_KMAX ? p.k : K;
  const int per = (p.len + p.steps - 1) / p.steps;
  const int blk = blockIdx.y, b = blk / per, t0 = (blk % per) * p.steps, t1 = min(p.len, t0 + p.steps);
  const size_t row0 = (size_t)b * p.len;
  int start = 0;
  if (p.reset)
    for (int s = max(0, t0 - (k - 1)); s < t0; s++)
      if (p.reset[row0 + s]) start = s;
  float acc[K], db = 0.f;
#pragma unroll
  for (int j = 0; j < K; j++) acc[j] = 0.f;
  for (int t = t0; t < t1; t++) {
    if (p.reset && p.reset[row0 + t]) start = t;
    const float dc = p.dc[(row0 + t) * p.ch + d];
    db += dc;
    const int lo = max(t - (k - 1), start) - t + k - 1;  // the first tap inside the window
    const long long x0 = ((long long)row0 + t - (k - 1)) * p.ch + d;  // tap 0's input (read from tap lo on)
#pragma unroll
    for (int j = 0; j < K; j++)
      if (j >= lo && j < k) acc[j] = fmaf(dc, p.x[x0 + (long long)j * p.ch], acc[j]);
  }
#pragma unroll
  for (int j = 0; j < K; j++)
    if (j < k) p.partw[((size_t)blk * p.ch + d) * k + j] = acc[j];
  p.partb[(size_t)blk * p.ch + d] = db;
}

extern "C" __global__ void conv_bwd_dw_part(const ConvParams p) {
  switch (p.k) {
    case 2: dw_part<2>(p); break;
    case 3: dw_part<3>(p); break;
    case 4: dw_part<4>(p); break;
    default: dw_part<CONV_KMAX>(p);
  }
}
