// Elementwise kernels, one thread per element, grid-stride loops:
//   add:       y = a + b                                   (residual connection; its gradient is g twice)
//   gate:      y = x·silu(z)     dx = g·silu(z)     dz = g·x·σ(z)·(1 + z·(1−σ(z)))
//   columns:   y[r, c] = x[r, lo+c]                   gradient: dx[r, j] = g[r, j−lo] for lo ≤ j < hi, else 0
//   bias_add:  y[r, j] += bias[j]                     (its gradient is a column sum, reduce.cu)
//   scale:     y = s·a                                 (the mean of accumulated gradients)
//   f32→bf16 (round to nearest even) and bf16→f32.
#include "common.cuh"

struct EltParams {
  const float *a, *b, *g;
  float *y, *da, *db;
  const __nv_bfloat16* hsrc;
  __nv_bfloat16* hdst;
  long long n;     // elements (rows·cols for the column kernels)
  int rows, cols;  // columns: y is (rows, cols) ... see each kernel
  int ld, lo;      // columns: the width of x and the first column taken
  float s;         // scale: the factor
  int pad;
};
static_assert(sizeof(EltParams) == 96, "EltParams layout (see elementwise.go)");

#define GRID_STRIDE(e, n) \
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (n); e += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void add_fwd(const EltParams p) {
  GRID_STRIDE(e, p.n) p.y[e] = p.a[e] + p.b[e];
}

// gate: a = x, b = z.
extern "C" __global__ void gate_fwd(const EltParams p) {
  GRID_STRIDE(e, p.n) {
    const float z = p.b[e];
    p.y[e] = p.a[e] * (z * sigmoidf(z));
  }
}

extern "C" __global__ void gate_bwd(const EltParams p) {
  GRID_STRIDE(e, p.n) {
    const float z = p.b[e], s = sigmoidf(z), g = p.g[e];
    if (p.da) p.da[e] = g * (z * s);
    if (p.db) p.db[e] = g * p.a[e] * s * (1.f + z * (1.f - s));
  }
}

// columns_fwd: y (rows, cols) = x[:, lo:lo+cols], x of width ld.
extern "C" __global__ void columns_fwd(const EltParams p) {
  GRID_STRIDE(e, p.n) {
    const long long r = e / p.cols;
    const int c = e % p.cols;
    p.y[e] = p.a[r * p.ld + p.lo + c];
  }
}

// columns_bwd: da (rows, ld) = g in columns lo..lo+cols, 0 elsewhere; n = rows·ld.
extern "C" __global__ void columns_bwd(const EltParams p) {
  GRID_STRIDE(e, p.n) {
    const long long r = e / p.ld;
    const int j = e % p.ld;
    p.da[e] = (j >= p.lo && j < p.lo + p.cols) ? p.g[r * p.cols + j - p.lo] : 0.f;
  }
}

// bias_add: y (rows, cols) += b[j].
extern "C" __global__ void bias_add(const EltParams p) {
  GRID_STRIDE(e, p.n) p.y[e] += p.b[e % p.cols];
}

extern "C" __global__ void scale_f32(const EltParams p) {
  GRID_STRIDE(e, p.n) p.y[e] = p.s * p.a[e];
}

extern "C" __global__ void f32_to_bf16(const EltParams p) {
  GRID_STRIDE(e, p.n) p.hdst[e] = __float2bfloat16_rn(p.a[e]);
}

extern "C" __global__ void bf16_to_f32(const EltParams p) {
  GRID_STRIDE(e, p.n) p.y[e] = __bfloat162float(p.hsrc[e]);
}
