// Embedding and cross-entropy.
//
// Embedding: out[r] = table[ids[r]] (table (vocab, dim)). Backward: dtable[v] = Σ_{r: ids[r] = v} dout[r],
// a scatter-add done as a gather: the host sorts the rows by id (stable, so each id's rows stay in
// position order) into offsets (vocab+1) and order (rows), and thread (v, j) adds dout[order[k], j]
// for k in offsets[v]..offsets[v+1] in order. No atomics; ids never seen get 0.
//
// Cross-entropy over logits x (rows, V), targets t (rows) in [0, V) or −1 (ignored):
//   lse_r = m_r + log Σ_j exp(x_rj − m_r), m_r = max_j x_rj      loss = (1/n)·Σ_{r: t_r ≠ −1} (lse_r − x_{r,t_r})
// with n the number of counted rows (loss 0 when n = 0). ce_fwd does one row per block; ce_sum adds
// the row losses in float64 in a fixed order. Backward: dx_rj = (g/n)·(exp(x_rj − lse_r) − [j = t_r])
// for counted rows, 0 for ignored ones, g = ∂L/∂loss.
#include "common.cuh"

struct EmbedParams {
  const float *table, *dout;
  const int *ids, *offsets, *order;
  float *out, *dtable;
  int rows, vocab, dim, pad;
};
static_assert(sizeof(EmbedParams) == 72, "EmbedParams layout (see embed.go)");

extern "C" __global__ void embed_fwd(const EmbedParams p) {
  const long long n = (long long)p.rows * p.dim;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
    const long long r = e / p.dim;
    const int j = e % p.dim;
    p.out[e] = p.table[(size_t)p.ids[r] * p.dim + j];
  }
}

// Grid (ceil(dim/128)·vocab) blocks of 128: block i covers id v = i / ceil(dim/128).
extern "C" __global__ void embed_bwd(const EmbedParams p) {
  const int cb = (p.dim + 127) / 128;
  const int v = blockIdx.x / cb, j = (blockIdx.x % cb) * 128 + threadIdx.x;
  if (j >= p.dim) return;
  float acc = 0.f;
  for (int k = p.offsets[v]; k < p.offsets[v + 1]; k++) acc += p.dout[(size_t)p.order[k] * p.dim + j];
  p.dtable[(size_t)v * p.dim + j] = acc;
}

struct CEParams {
  const float* x;
  const int* targets;
  float *lse, *rowloss, *loss, *dx;
  const float* dloss;
  double* stats;  // [0] Σ row losses, [1] counted rows
  long long rows;
  int vocab, pad;
};
static_assert(sizeof(CEParams) == 80, "CEParams layout (see loss.go)");

// One block (256 threads) per row.
extern "C" __global__ void ce_fwd(const CEParams p) {
  STATIC_SMEM(float, red, 32);
  const long long r = blockIdx.x;
  const float* x = p.x + r * p.vocab;
  const int t = p.targets[r];
  if (t < 0) {
    if (threadIdx.x == 0) {
      p.rowloss[r] = 0.f;
      p.lse[r] = 0.f;
    }
    return;
  }
  float m = -INFINITY;
  for (int j = threadIdx.x; j < p.vocab; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_max(m, red);
  float s = 0.f;
  for (int j = threadIdx.x; j < p.vocab; j += blockDim.x) s += expf(x[j] - m);
  s = block_sum(s, red);
  if (threadIdx.x == 0) {
    const float lse = m + logf(s);
    p.lse[r] = lse;
    p.rowloss[r] = lse - x[t];
  }
}

// One block of 1024 threads: loss = Σ row losses / counted rows, in float64, fixed order.
extern "C" __global__ void ce_sum(const CEParams p) {
  STATIC_SMEM(double, red, 32);
  double s = 0.0, c = 0.0;
  for (long long r = threadIdx.x; r < p.rows; r += blockDim.x) {
    if (p.targets[r] >= 0) {
      s += (double)p.rowloss[r];
      c += 1.0;
    }
  }
  s = block_sum_d(s, red);
  c = block_sum_d(c, red);
  if (threadIdx.x == 0) {
    p.stats[0] = s;
    p.stats[1] = c;
    p.loss[0] = c > 0 ? (float)(s / c) : 0.f;
  }
}

extern "C" __global__ void ce_bwd(const CEParams p) {
  const long long n = p.rows * p.vocab;
  const double c = p.stats[1];
  const float scale = c > 0 ? p.dloss[0] / (float)c : 0.f;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
    const long long r = e / p.vocab;
    const int j = e % p.vocab, t = p.targets[r];
    float v = 0.f;
    if (t >= 0) {
      v = expf(p.x[e] - p.lse[r]) * scale;
      if (j == t) v -= scale;
    }
    p.dx[e] = v;
  }
}
