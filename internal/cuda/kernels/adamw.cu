// Fused AdamW with float32 master weights, and the global gradient norm, computed as package optim
// computes them, operation for operation (round-to-nearest intrinsics keep the compiler from fusing
// a multiply and an add), so that the same gradients give bitwise the same update as the CPU:
//
//   parameters are cut into blocks of 16384 elements (optim.blockSize);
//   per block: s_c = Σ_{i ≡ c mod 4} g_i² in float64, c = 0..3 (tail added to s_0), and
//   partial = (s_0 + s_1) + (s_2 + s_3); total = Σ partials in block order; norm = sqrt(total)
//   scale = min(1, clip/(norm + 1e-6)) as float32 (1 when clip = 0)
//   per element, with a1 = (1−β1)·scale, a2 = (1−β2)·scale·scale:
//     m = β1·m + a1·g     v = β2·v + a2·g·g     p = p·keep − c·m/(sqrt(v) + ε')
//   keep = 1 − lr·λ (1 for NoDecay), c = c1/c2, ε' = ε/c2, c1 = lr/(1−β1^t), c2 = 1/sqrt(1−β2^t).
#include "common.cuh"

#define OPT_BLOCK 16384

struct AdamSeg {
  float *p, *g, *m, *v;
  long long n;
  int nodecay, pad;
};
static_assert(sizeof(AdamSeg) == 48, "AdamSeg layout (see adamw.go)");

struct AdamBlock {
  int seg, pad;
  long long lo;
};
static_assert(sizeof(AdamBlock) == 16, "AdamBlock layout (see adamw.go)");

struct AdamParams {
  const AdamSeg* segs;
  const AdamBlock* blocks;
  double* partial;  // (blocks)
  double* stats;    // [0] norm
  float* scale;     // [0] clip scale, read by adamw_step
  int nblocks, pad0;
  double clip;
  float beta1, beta2, c, eps, keep, pad1;
};
static_assert(sizeof(AdamParams) == 80, "AdamParams layout (see adamw.go)");

// Four threads per parameter block, thread c summing class c; block 128 threads.
extern "C" __global__ void gradnorm_part(const AdamParams p) {
  const int gi = blockIdx.x * blockDim.x + threadIdx.x;
  const int blk = gi >> 2, c = gi & 3;
  double s = 0.0;
  if (blk < p.nblocks) {
    const AdamBlock bk = p.blocks[blk];
    const AdamSeg sg = p.segs[bk.seg];
    const long long hi = min(sg.n, bk.lo + OPT_BLOCK);
    const float* g = sg.g + bk.lo;
    const long long len = hi - bk.lo, len4 = len / 4 * 4;
    long long i = c;
    for (; i < len4; i += 4) {
      const double x = (double)g[i];
      s = __dadd_rn(s, __dmul_rn(x, x));
    }
    if (c == 0)
      for (i = len4; i < len; i++) {
        const double x = (double)g[i];
        s = __dadd_rn(s, __dmul_rn(x, x));
      }
  }
  const int base = threadIdx.x & ~3;
  const double s0 = __shfl_sync(0xffffffffu, s, base & 31), s1 = __shfl_sync(0xffffffffu, s, (base + 1) & 31);
  const double s2 = __shfl_sync(0xffffffffu, s, (base + 2) & 31), s3 = __shfl_sync(0xffffffffu, s, (base + 3) & 31);
  if (c == 0 && blk < p.nblocks) p.partial[blk] = __dadd_rn(__dadd_rn(s0, s1), __dadd_rn(s2, s3));
}

// One thread: the partials in block order, the norm and the clip scale.
extern "C" __global__ void gradnorm_finish(const AdamParams p) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double s = 0.0;
  for (int i = 0; i < p.nblocks; i++) s = __dadd_rn(s, p.partial[i]);
  const double norm = __dsqrt_rn(s);
  p.stats[0] = norm;
  float sc = 1.f;
  if (p.clip > 0) {
    const double r = __ddiv_rn(p.clip, __dadd_rn(norm, 1e-6));
    sc = r >= 1 ? 1.f : __double2float_rn(r);
  }
  p.scale[0] = sc;
}

// One thread per element of each block: grid (nblocks, OPT_BLOCK/256) blocks of 256.
extern "C" __global__ void adamw_step(const AdamParams p) {
  const AdamBlock bk = p.blocks[blockIdx.x];
  const AdamSeg sg = p.segs[bk.seg];
  const long long i = bk.lo + (long long)blockIdx.y * blockDim.x + threadIdx.x;
  if (i >= sg.n || i >= bk.lo + OPT_BLOCK) return;
  const float s = p.scale[0];
  const float a1 = __fmul_rn(__fsub_rn(1.f, p.beta1), s);
  const float a2 = __fmul_rn(__fmul_rn(__fsub_rn(1.f, p.beta2), s), s);
  const float keep = sg.nodecay ? 1.f : p.keep;
  const float g = sg.g[i];
  const float mi = __fadd_rn(__fmul_rn(p.beta1, sg.m[i]), __fmul_rn(a1, g));
  const float vi = __fadd_rn(__fmul_rn(p.beta2, sg.v[i]), __fmul_rn(__fmul_rn(a2, g), g));
  sg.m[i] = mi;
  sg.v[i] = vi;
  const float upd = __fdiv_rn(__fmul_rn(p.c, mi), __fadd_rn(__fsqrt_rn(vi), p.eps));
  sg.p[i] = __fsub_rn(__fmul_rn(sg.p[i], keep), upd);
}
