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

// The elementwise kernels run on grid (⌈ch/blockDim⌉, tiles'): a thread per channel d and tile of
// CONV_TT consecutive steps of one sequence, with a stride of gridDim.y over the tiles. A tile's b and
// t0 are divided out once in 32 bits (rows and channels fit in int: sizeLimit in ops.go). For the
// widths 2–4 a thread keeps the K inputs (or gradients) of its window in registers as t advances,
// and the last document start, so that each element is read once; other widths read their window
// from memory per step (first_input, conv_pre). Both add the terms in the same order.
#define CONV_TT 8

template <class F>
__device__ __forceinline__ void conv_tiles(const ConvParams& p, F f) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x;
  if (d >= p.ch) return;
  const int per = (p.len + CONV_TT - 1) / CONV_TT;
  for (int tile = blockIdx.y; tile < p.batch * per; tile += gridDim.y) {
    const int b = tile / per, t0 = (tile - b * per) * CONV_TT;
    f(b, t0, min(p.len, t0 + CONV_TT), d);
  }
}

// pre_tile<K> calls f(t, e, c) for t in [t0, t1) with c the convolution before the SiLU, the terms
// added as conv_pre adds them.
template <int K, class F>
__device__ __forceinline__ void pre_tile(const ConvParams& p, int b, int t0, int t1, int d, F f) {
  const size_t row0 = (size_t)b * p.len;
  float w[K], xs[K];
  int start = 0;  // the last document start at or before t (0: the sequence's)
#pragma unroll
  for (int j = 0; j < K; j++) {
    w[j] = p.w[d * K + j];
    const int s = t0 - K + j;  // xs[1..K−1] = x[t0−(K−1) .. t0−1]; xs[0] is shifted out first
    xs[j] = (j > 0 && s >= 0) ? p.x[(row0 + s) * p.ch + d] : 0.f;
    if (j > 0 && s >= 0 && p.reset && p.reset[row0 + s]) start = s;
  }
  const float bias = p.bias ? p.bias[d] : 0.f;
  for (int t = t0; t < t1; t++) {
    const size_t e = (row0 + t) * p.ch + d;
#pragma unroll
    for (int j = 0; j < K - 1; j++) xs[j] = xs[j + 1];
    xs[K - 1] = p.x[e];
    if (p.reset && p.reset[row0 + t]) start = t;
    const int lo = max(t - (K - 1), start);
    float c = bias;
#pragma unroll
    for (int j = 0; j < K; j++)
      if (t - (K - 1) + j >= lo) c = fmaf(w[j], xs[j], c);
    f(t, e, c);
  }
}

// pre calls f(t, e, c) over the tile, with the window in registers for widths 2–4.
template <class F>
__device__ __forceinline__ void pre(const ConvParams& p, int b, int t0, int t1, int d, F f) {
  switch (p.k) {
    case 2: pre_tile<2>(p, b, t0, t1, d, f); return;
    case 3: pre_tile<3>(p, b, t0, t1, d, f); return;
    case 4: pre_tile<4>(p, b, t0, t1, d, f); return;
  }
  for (int t = t0; t < t1; t++) f(t, ((size_t)b * p.len + t) * p.ch + d, conv_pre(p, b, t, d));
}

extern "C" __global__ void conv_fwd(const ConvParams p) {
  conv_tiles(p, [&](int b, int t0, int t1, int d) {
    pre(p, b, t0, t1, d, [&](int, size_t e, float c) { p.y[e] = p.silu ? c * sigmoidf(c) : c; });
  });
}

// dc = ∂L/∂c into p.dc.
extern "C" __global__ void conv_bwd_dc(const ConvParams p) {
  conv_tiles(p, [&](int b, int t0, int t1, int d) {
    if (!p.silu) {
      for (int t = t0; t < t1; t++) {
        const size_t e = ((size_t)b * p.len + t) * p.ch + d;
        p.dc[e] = p.dy[e];
      }
      return;
    }
    pre(p, b, t0, t1, d, [&](int, size_t e, float c) {
      const float s = sigmoidf(c);
      p.dc[e] = p.dy[e] * s * (1.f + c * (1.f - s));
    });
  });
}

// dx from dc: x_s, at row (b, s), feeds the steps t = s + i through tap K−1−i (i = 0 … K−1), up to
// the end of the sequence and the next document start after s (a step at or past it does not see
// x_s). dx_tile<K> keeps dc[s … s+K−1] and their reset flags in registers as s advances.
template <int K>
__device__ __forceinline__ void dx_tile(const ConvParams& p, int b, int t0, int t1, int d) {
  const size_t row0 = (size_t)b * p.len;
  float w[K], g[K];
  bool r[K];
#pragma unroll
  for (int i = 0; i < K; i++) {
    w[i] = p.w[d * K + K - 1 - i];  // the tap that step s + i applies to x_s
    const int t = t0 + i - 1;        // g[1..K−1] = dc[t0 … t0+K−2]; g[0] is shifted out first
    const bool in = i > 0 && t < p.len;
    g[i] = in ? p.dc[(row0 + t) * p.ch + d] : 0.f;
    r[i] = in && p.reset && p.reset[row0 + t];
  }
  for (int s = t0; s < t1; s++) {
#pragma unroll
    for (int i = 0; i < K - 1; i++) g[i] = g[i + 1], r[i] = r[i + 1];
    const int t = s + K - 1;
    const bool in = t < p.len;
    g[K - 1] = in ? p.dc[(row0 + t) * p.ch + d] : 0.f;
    r[K - 1] = in && p.reset && p.reset[row0 + t];
    float acc = 0.f;
    bool open = true;
#pragma unroll
    for (int i = 0; i < K; i++) {
      open = open && s + i < p.len && !(i > 0 && r[i]);
      if (open) acc = fmaf(g[i], w[i], acc);
    }
    p.dx[(row0 + s) * p.ch + d] = acc;
  }
}

extern "C" __global__ void conv_bwd_dx(const ConvParams p) {
  conv_tiles(p, [&](int b, int t0, int t1, int d) {
    switch (p.k) {
      case 2: dx_tile<2>(p, b, t0, t1, d); return;
      case 3: dx_tile<3>(p, b, t0, t1, d); return;
      case 4: dx_tile<4>(p, b, t0, t1, d); return;
    }
    const size_t row0 = (size_t)b * p.len;
    for (int s = t0; s < t1; s++) {
      float acc = 0.f;
      for (int j = p.k - 1; j >= 0; j--) {
        const int t = s + (p.k - 1) - j;
        if (t >= p.len || (t > s && p.reset && p.reset[row0 + t])) break;
        acc = fmaf(p.dc[(row0 + t) * p.ch + d], p.w[d * p.k + j], acc);
      }
      p.dx[(row0 + s) * p.ch + d] = acc;
    }
  });
}

// Partials of dw and db over blocks of p.steps steps of one sequence: grid (ceil(ch/128),
// batch·ceil(len/steps)), block 128; partw[blk, d·K + j], partb[blk, d]. dw_part<K> unrolls the
// taps of a width K known when compiled and keeps the window x[t−(K−1) … t] in registers as t
// advances (K = CONV_KMAX: any width p.k up to it, read from memory). The window of step t starts
// at max(0, t − (K−1), start), start the last document start at or before t, also kept as t
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
  float acc[K], xs[K], db = 0.f;
#pragma unroll
  for (int j = 0; j < K; j++) {
    acc[j] = 0.f;
    const int s = t0 - K + j;  // xs[1..K−1] = x[t0−(K−1) … t0−1]; xs[0] is shifted out first
    if constexpr (K != CONV_KMAX) xs[j] = (j > 0 && s >= 0) ? p.x[(row0 + s) * p.ch + d] : 0.f;
  }
  for (int t = t0; t < t1; t++) {
    if (p.reset && p.reset[row0 + t]) start = t;
    const float dc = p.dc[(row0 + t) * p.ch + d];
    db += dc;
    const int lo = max(t - (k - 1), start) - t + k - 1;  // the first tap inside the window
    const long long x0 = ((long long)row0 + t - (k - 1)) * p.ch + d;  // tap 0's input (read from tap lo on)
    if constexpr (K != CONV_KMAX) {
#pragma unroll
      for (int j = 0; j < K - 1; j++) xs[j] = xs[j + 1];
      xs[K - 1] = p.x[(row0 + t) * p.ch + d];
    }
#pragma unroll
    for (int j = 0; j < K; j++)
      if (j >= lo && j < k) acc[j] = fmaf(dc, K != CONV_KMAX ? xs[j] : p.x[x0 + (long long)j * p.ch], acc[j]);
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
