// Deterministic column sums: out_j = Σ_r a[r,j]·b[r,j]·s_r (b and s optional), in two passes with no
// atomics. colsum_partial adds the rows of each block of p.chunk rows in order into part[blk, j]
// (the host chooses at least 64 rows and about 128 blocks); sum_parts adds part[k, j] over k in
// order. The result depends only on the shape.
#include "common.cuh"

struct ColsumParams {
  const float *a, *b, *s;
  float *part, *out;
  long long rows;
  int cols, lda, ldb, parts;
  int chunk, pad;  // rows per partial
};
static_assert(sizeof(ColsumParams) == 72, "ColsumParams layout (see reduce.go)");

// Grid (ceil(cols/256), ceil(rows/chunk)), block 256.
extern "C" __global__ void colsum_partial(const ColsumParams p) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= p.cols) return;
  const long long r0 = (long long)blockIdx.y * p.chunk;
  const long long r1 = min(p.rows, r0 + p.chunk);
  float acc = 0.f;
  for (long long r = r0; r < r1; r++) {
    float v = p.a[r * p.lda + j];
    if (p.b) v *= p.b[r * p.ldb + j];
    if (p.s) v *= p.s[r];
    acc += v;
  }
  p.part[(size_t)blockIdx.y * p.cols + j] = acc;
}

// Grid ceil(cols/256), block 256: out[j] = Σ_k part[k, j], k in order.
extern "C" __global__ void sum_parts(const ColsumParams p) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= p.cols) return;
  float acc = 0.f;
  for (int k = 0; k < p.parts; k++) acc += p.part[(size_t)k * p.cols + j];
  p.out[j] = acc;
}
