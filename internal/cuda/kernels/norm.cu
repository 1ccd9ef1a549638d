// RMSNorm over rows of x (rows, dim), weight w (dim):
//   r = 1/sqrt(mean_j x_j² + eps)     y_j = x_j·r·w_j
// Backward, with m = mean(x²), ∂r/∂x_k = −r³·x_k/dim:
//   dx_k = r·(g_k·w_k − x_k·r²·(1/dim)·Σ_j g_j·w_j·x_j)     dw_j = Σ_rows g_j·x_j·r
// One warp per row; dw is a per-row-block partial (colsum_partial with the row scale r) added over
// the blocks in order by sum_parts.
#include "common.cuh"

struct RMSNormParams {
  const float *x, *w, *dy;
  float *y, *rstd, *dx;
  int rows, dim;
  float eps;
  int pad;
};
static_assert(sizeof(RMSNormParams) == 64, "RMSNormParams layout (see norm.go)");

// Block 256 threads = 8 rows; grid ceil(rows/8).
extern "C" __global__ void rmsnorm_fwd(const RMSNormParams p) {
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= p.rows) return;
  const float* x = p.x + (size_t)r * p.dim;
  float* y = p.y + (size_t)r * p.dim;
  float s = 0.f;
  for (int j = lane; j < p.dim; j += 32) s = fmaf(x[j], x[j], s);
  s = warp_sum(s);
  const float rs = 1.f / sqrtf(s / (float)p.dim + p.eps);
  if (lane == 0 && p.rstd) p.rstd[r] = rs;
  for (int j = lane; j < p.dim; j += 32) y[j] = x[j] * rs * p.w[j];
}

// rmsnorm_bwd_dx needs rstd from the forward. Block 256 threads = 8 rows.
extern "C" __global__ void rmsnorm_bwd_dx(const RMSNormParams p) {
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= p.rows) return;
  const float* x = p.x + (size_t)r * p.dim;
  const float* g = p.dy + (size_t)r * p.dim;
  float* dx = p.dx + (size_t)r * p.dim;
  const float rs = p.rstd[r];
  float s = 0.f;
  for (int j = lane; j < p.dim; j += 32) s = fmaf(g[j] * p.w[j], x[j], s);
  s = warp_sum(s);
  const float c = s * rs * rs / (float)p.dim;
  for (int j = lane; j < p.dim; j += 32) dx[j] = rs * (g[j] * p.w[j] - x[j] * c);
}
