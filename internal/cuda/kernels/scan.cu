// Selective scan (Mamba S6), forward and backward, token-major:
//   u, delta, z, out: (batch, len, ch)   B, C: (batch, len, N)   A, (A_log): (ch, N)
//   D, dbias: (ch)   h0, last: (batch, ch, N)   reset: (batch, len) bytes, nonzero at a document start
//
// Forward, per batch b, channel d, state n, time t (h_{-1} = h0, or 0; a reset zeroes h_{t-1}):
//   Δ_t = softplus(δ_t + bias_d) (or δ_t + bias_d)     Ā_t = exp(Δ_t·A_n) = 2^(Δ_t·A_n·log2 e)
//   h_t = Ā_t·h_{t-1} + Δ_t·u_t·B_t                    y_t = Σ_n C_t·h_t + D·u_t
//   out_t = y_t·silu(z_t) (or y_t)                      last = h_{L-1}
//
// Backward (g_t = ∂L/∂out_t, s = σ(z_t)): ĝ_t = g_t·z_t·s is ∂L/∂y_t, ∂L/∂z_t = g_t·y_t·s·(1 + z_t(1−s)).
// The adjoint λ_t = ∂L/∂h_t obeys λ_t = C_t·ĝ_t + μ_t with μ_t = Ā_{t+1}·λ_{t+1} the gradient reaching
// h_t from later steps (μ_{L-1} = dlast; μ is zeroed across a reset, since h_t no longer feeds h_{t+1}).
// h_t depends on u_t, Δ_t, B_t, A, h_{t-1} only through Ā_t·h_{t-1} + Δ_t·u_t·B_t with
// ∂Ā_t/∂Δ_t = A·Ā_t and ∂Ā_t/∂A = Δ_t·Ā_t, so with q_t = Ā_t·λ_t·h_{t-1} (h_{t-1} = 0 after a reset):
//   ∂L/∂C_t = Σ_d ĝ_t·h_t        ∂L/∂B_t = Σ_d λ_t·Δ_t·u_t
//   ∂L/∂u_t = D·ĝ_t + Δ_t·s1_t   ∂L/∂Δ_t = u_t·s1_t + s2_t      s1_t = Σ_n λ_t·B_t, s2_t = Σ_n A·q_t
//   ∂L/∂A = Σ_{b,t} Δ_t·q_t      ∂L/∂D = Σ_{b,t} ĝ_t·u_t        ∂L/∂h0 = μ_{-1} = Ā_0·λ_0
//   ∂L/∂δ_t = ∂L/∂Δ_t·σ(δ_t + bias) (1 above 20, or without softplus)   ∂L/∂bias = Σ_{b,t} ∂L/∂δ_t
//   ∂L/∂A_log = ∂L/∂A·A           (A = −exp(A_log))
//
// Work split. A block owns 32 channels of one sequence (one channel per lane) and all N states:
// warp g holds states 4g..4g+3 of its lane's channel in registers (NS = 4, G warps, the power of two
// with 4G ≥ N, N ≤ 64; one kernel per G), and walks time sequentially. Per-token values (Δ, Δu, ĝ, …)
// are computed once per (t, channel) into shared memory tiles loaded with coalesced rows (lanes over
// channels); B_t and C_t are read by all lanes from shared memory (broadcast). The global loads of
// the next tile are issued into registers before the current tile's recurrence runs (prefetch), so
// that their latency overlaps the arithmetic. Sums over the states (y, s1, s2) are per-warp partials in
// shared memory added over the warps in order; sums over the block's 32 channels (dB, dC) are warp
// butterflies, written as per-block partials that scan_reduce_bc adds over the blocks in order; dA, dD
// and d(bias) are per-sequence partials that scan_reduce_params adds over the batch in order. No
// atomics: every result is bitwise reproducible.
//
// Memory. The forward keeps only the state entering each segment of S steps (ck, (batch, nseg, ch, N)).
// The backward walks the segments last to first: pass 1 reruns the segment from its saved state and
// keeps the state at every sub-chunk of T = 8 steps in shared memory; pass 2 walks the sub-chunks last
// to first, recomputes the T states and Ā in registers from the sub-chunk's state, then runs the
// reverse recurrence over them. Each element's exp is thus computed three times in all (forward,
// pass 1, pass 2) and no per-step state ever reaches device memory.
#include "common.cuh"

#define NS 4       // states per thread
#define SCAN_T 8   // backward sub-chunk: steps whose states sit in registers
#define SCAN_TF 32 // forward tile

// Per-token math of the scan, on the fast exp (ex2.approx; relative error about 1e-6 for the
// arguments here) and division: sp_fast(x) = softplus(x) (x above 20), sig_fast(x) = σ(x).
__device__ __forceinline__ float sig_fast(float x) { return __fdividef(1.f, 1.f + __expf(-x)); }
__device__ __forceinline__ float sp_fast(float x) { return x > 20.f ? x : fmaxf(x, 0.f) + log1pf(__expf(-fabsf(x))); }

struct ScanParams {
  const float *u, *delta, *A, *B, *C, *D, *z, *dbias, *h0;
  const uint8_t* reset;
  float *out, *last, *ck;
  const float *dout, *dlast;
  float *du, *ddelta, *dz, *dh0, *dApart, *dDpart, *dbpart, *dBpart, *dCpart;
  int batch, len, ch, nstate;
  int seg;      // S, the steps between saved states (a multiple of SCAN_T and SCAN_TF)
  int nseg;     // ceil(len / S)
  int softplus; // Δ = softplus(δ + bias)
  int alog;     // A holds A_log: A = −exp(A_log), and the gradient is that of A_log
  int groups;   // G, the power of two with G·NS ≥ nstate; blockDim.x = 32·G
  int sub;      // S / SCAN_T
  int prefetch; // load each tile while the previous one's recurrence runs
  int pad;
};
static_assert(sizeof(ScanParams) == 240, "ScanParams layout (see scan.go)");

// load_a reads A (or −exp(A_log)) of channel d, state n, 0 outside the shape.
__device__ __forceinline__ float load_a(const ScanParams& p, int d, int n) {
  if (d >= p.ch || n >= p.nstate) return 0.f;
  float a = p.A[(size_t)d * p.nstate + n];
  return p.alog ? -expf(a) : a;
}

// scan_fwd_smem_floats is the shared memory of scan_fwd, in floats (scan.go computes the same).
__device__ __forceinline__ int scan_fwd_smem_floats(int G) {
  const int NP = G * NS;
  return 4 * SCAN_TF * 32 + 2 * SCAN_TF * NP + SCAN_TF + G * SCAN_TF * 32;
}

// FwdTile holds one forward tile's global loads in registers: each thread's (t, lane) items of u,
// δ and z, its (t, n) items of B and C, and (threads below SCAN_TF) the reset flag of step t. load
// issues the loads; store transforms and writes them into the shared tiles. With p.prefetch the
// next tile is loaded while the current one's recurrence runs, so that the loads' latency hides
// behind it.
template <int G>
struct FwdTile {
  static constexpr int NTH = 32 * G, NP = G * NS;
  static constexpr int ITEMS = (SCAN_TF * 32 + NTH - 1) / NTH, BITEMS = (SCAN_TF * NP + NTH - 1) / NTH;
  float u[ITEMS], dl[ITEMS], z[ITEMS], B[BITEMS], C[BITEMS], rs;

  __device__ __forceinline__ void load(const ScanParams& p, int b, int d, bool dok, int t0) {
    const int L = p.len, Dn = p.ch, N = p.nstate;
#pragma unroll
    for (int k = 0; k < ITEMS; k++) {
      const int i = threadIdx.x + k * NTH, t = t0 + (i >> 5);
      u[k] = dl[k] = z[k] = 0.f;
      if (i < SCAN_TF * 32 && dok && t < L) {
        const size_t gi = ((size_t)b * L + t) * Dn + d;
        u[k] = p.u[gi];
        dl[k] = p.delta[gi];
        if (p.z) z[k] = p.z[gi];
      }
    }
#pragma unroll
    for (int k = 0; k < BITEMS; k++) {
      const int i = threadIdx.x + k * NTH, t = t0 + i / NP, n = i % NP;
      const bool ok = i < SCAN_TF * NP && t < L && n < N;
      const size_t gi = ((size_t)b * L + t) * N + n;
      B[k] = ok ? p.B[gi] : 0.f;
      C[k] = ok ? p.C[gi] : 0.f;
    }
    const int t = t0 + threadIdx.x;
    rs = (threadIdx.x < SCAN_TF && p.reset && t < L && p.reset[(size_t)b * L + t]) ? 1.f : 0.f;
  }

  // store writes the tile of steps t0… (the steps past the end, and absent channels, as zeros).
  __device__ __forceinline__ void store(const ScanParams& p, bool dok, int t0, float bias, float* su, float* sdl, float* sdu,
                                        float* sz, float* sB, float* sC, float* srs) const {
#pragma unroll
    for (int k = 0; k < ITEMS; k++) {
      const int i = threadIdx.x + k * NTH;
      if (i < SCAN_TF * 32) {
        const float x = dl[k] + bias;
        const float dd = (dok && t0 + (i >> 5) < p.len) ? (p.softplus ? sp_fast(x) : x) : 0.f;
        su[i] = u[k];
        sdl[i] = dd;
        sdu[i] = dd * u[k];
        sz[i] = z[k];
      }
    }
#pragma unroll
    for (int k = 0; k < BITEMS; k++) {
      const int i = threadIdx.x + k * NTH;
      if (i < SCAN_TF * NP) {
        sB[i] = B[k];
        sC[i] = C[k];
      }
    }
    if (threadIdx.x < SCAN_TF) srs[threadIdx.x] = rs;
  }
};

// Grid (ceil(ch/32), batch), block 32·G threads (G warps, a power of two with G·NS ≥ N).
template <int G>
__device__ __forceinline__ void scan_fwd_impl(const ScanParams& p) {
  DYNAMIC_SMEM(float, smem);
  constexpr int NP = G * NS, NTH = 32 * G;
  const int L = p.len, Dn = p.ch, N = p.nstate;
  if (p.groups != G || dyn_smem_bytes() < 4u * scan_fwd_smem_floats(G)) __trap();
  const int lane = threadIdx.x & 31, g = threadIdx.x >> 5;
  const int b = blockIdx.y, d = blockIdx.x * 32 + lane;
  const bool dok = d < Dn;
  float* su = smem;                 // [TF][32] u
  float* sdl = su + SCAN_TF * 32;   // [TF][32] Δ
  float* sdu = sdl + SCAN_TF * 32;  // [TF][32] Δ·u
  float* sz = sdu + SCAN_TF * 32;   // [TF][32] z
  float* sB = sz + SCAN_TF * 32;    // [TF][NP]
  float* sC = sB + SCAN_TF * NP;    // [TF][NP]
  float* srs = sC + SCAN_TF * NP;   // [TF] 1 where the state resets
  float* sy = srs + SCAN_TF;        // [G][TF][32] per-warp partial y

  float A2[NS], h[NS];
#pragma unroll
  for (int s = 0; s < NS; s++) {
    const int n = g * NS + s;
    A2[s] = load_a(p, d, n) * LOG2E;
    h[s] = (p.h0 && dok && n < N) ? p.h0[((size_t)b * Dn + d) * N + n] : 0.f;
  }
  const float Dd = (p.D && dok) ? p.D[d] : 0.f;
  const float bias = (p.dbias && dok) ? p.dbias[d] : 0.f;

  FwdTile<G> tile;
  tile.load(p, b, d, dok, 0);
  for (int t0 = 0; t0 < L; t0 += SCAN_TF) {
    if (p.ck && t0 % p.seg == 0) {
      const int sg = t0 / p.seg;
#pragma unroll
      for (int s = 0; s < NS; s++) {
        const int n = g * NS + s;
        if (dok && n < N) p.ck[(((size_t)b * p.nseg + sg) * Dn + d) * N + n] = h[s];
      }
    }
    if (!p.prefetch && t0 > 0) tile.load(p, b, d, dok, t0);
    tile.store(p, dok, t0, bias, su, sdl, sdu, sz, sB, sC, srs);
    __syncthreads();
    if (p.prefetch && t0 + SCAN_TF < L) tile.load(p, b, d, dok, t0 + SCAN_TF);
#pragma unroll 4
    for (int i = 0; i < SCAN_TF; i++) {
      const float dl = sdl[i * 32 + lane], dlu = sdu[i * 32 + lane];
      const bool rs = srs[i] != 0.f;
      const float4 bv = *reinterpret_cast<const float4*>(&sB[i * NP + g * NS]);
      const float4 cv = *reinterpret_cast<const float4*>(&sC[i * NP + g * NS]);
      const float bb[4] = {bv.x, bv.y, bv.z, bv.w}, cc[4] = {cv.x, cv.y, cv.z, cv.w};
      float y = 0.f;
#pragma unroll
      for (int s = 0; s < NS; s++) {
        const float a = ex2(dl * A2[s]);
        const float hp = rs ? 0.f : h[s];
        h[s] = fmaf(a, hp, dlu * bb[s]);
        y = fmaf(cc[s], h[s], y);
      }
      sy[(g * SCAN_TF + i) * 32 + lane] = y;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < SCAN_TF * 32; i += NTH) {
      const int t = t0 + (i >> 5);
      if (dok && t < L) {
        float y = Dd * su[i];
#pragma unroll
        for (int gg = 0; gg < G; gg++) y += sy[(gg * SCAN_TF + (i >> 5)) * 32 + lane];
        if (p.z) {
          const float zz = sz[i];
          y *= zz * sig_fast(zz);
        }
        p.out[((size_t)b * L + t) * Dn + d] = y;
      }
    }
    __syncthreads();
  }
  if (p.last && dok) {
#pragma unroll
    for (int s = 0; s < NS; s++) {
      const int n = g * NS + s;
      if (n < N) p.last[((size_t)b * Dn + d) * N + n] = h[s];
    }
  }
}

// scan_bwd_smem_floats is the shared memory of scan_bwd, in floats (scan.go computes the same).
__device__ __forceinline__ int scan_bwd_smem_floats(int G, int sub) {
  const int NP = G * NS;
  return 8 * SCAN_T * 32 + 4 * SCAN_T * NP + SCAN_T + 3 * G * SCAN_T * 32 + sub * NP * 32 + G * 64;
}

// reduce8 sums v[0..7] over the 32 lanes of the warp: three halving exchanges (16, 8, 4) leave one
// value per lane, two butterflies (2, 1) finish the sum. Lanes 4k..4k+3 return the sum of v[k].
__device__ __forceinline__ float reduce8(const float v[8], int lane) {
  float w4[4], w2[2];
  const bool u16 = lane & 16, u8 = lane & 8, u4 = lane & 4;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const float send = u16 ? v[j] : v[j + 4], keep = u16 ? v[j + 4] : v[j];
    w4[j] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
  }
#pragma unroll
  for (int j = 0; j < 2; j++) {
    const float send = u8 ? w4[j] : w4[j + 2], keep = u8 ? w4[j + 2] : w4[j];
    w2[j] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
  }
  const float send = u4 ? w2[0] : w2[1], keep = u4 ? w2[1] : w2[0];
  float r = keep + __shfl_xor_sync(0xffffffffu, send, 4);
  r += __shfl_xor_sync(0xffffffffu, r, 2);
  r += __shfl_xor_sync(0xffffffffu, r, 1);
  return r;
}

// BwdTile holds one backward sub-chunk's global loads in registers (see FwdTile): u, δ, and for
// pass 2 also ∂L/∂out and z; B, and for pass 2 also C; the reset flags.
template <int G>
struct BwdTile {
  static constexpr int NTH = 32 * G, NP = G * NS;
  static constexpr int ITEMS = (SCAN_T * 32 + NTH - 1) / NTH, BITEMS = (SCAN_T * NP + NTH - 1) / NTH;
  float u[ITEMS], dl[ITEMS], go[ITEMS], z[ITEMS], B[BITEMS], C[BITEMS], rs;

  __device__ __forceinline__ void load(const ScanParams& p, int b, int d, bool dok, int t0, bool pass2) {
    const int L = p.len, Dn = p.ch, N = p.nstate;
#pragma unroll
    for (int k = 0; k < ITEMS; k++) {
      const int i = threadIdx.x + k * NTH, t = t0 + (i >> 5);
      u[k] = dl[k] = go[k] = z[k] = 0.f;
      if (i < SCAN_T * 32 && dok && t < L) {
        const size_t gi = ((size_t)b * L + t) * Dn + d;
        u[k] = p.u[gi];
        dl[k] = p.delta[gi];
        if (pass2) {
          go[k] = p.dout[gi];
          if (p.z) z[k] = p.z[gi];
        }
      }
    }
#pragma unroll
    for (int k = 0; k < BITEMS; k++) {
      const int i = threadIdx.x + k * NTH, t = t0 + i / NP, n = i % NP;
      const bool ok = i < SCAN_T * NP && t < L && n < N;
      const size_t gi = ((size_t)b * L + t) * N + n;
      B[k] = ok ? p.B[gi] : 0.f;
      C[k] = ok && pass2 ? p.C[gi] : 0.f;
    }
    const int t = t0 + threadIdx.x;
    rs = (threadIdx.x < SCAN_T && p.reset && t < L && p.reset[(size_t)b * L + t]) ? 1.f : 0.f;
  }
};

// Grid (ceil(ch/32), batch), block 32·G threads. Writes du, ddelta, dz, dh0 (each if non-null) and
// the partials dApart (batch, ch, N), dDpart and dbpart (batch, ch), dBpart and dCpart
// (ceil(ch/32), batch, len, N).
template <int G>
__device__ __forceinline__ void scan_bwd_impl(const ScanParams& p) {
  DYNAMIC_SMEM(float, smem);
  constexpr int NP = G * NS, NTH = 32 * G;
  const int L = p.len, Dn = p.ch, N = p.nstate, S = p.seg;
  if (p.groups != G || dyn_smem_bytes() < 4u * scan_bwd_smem_floats(G, p.sub)) __trap();
  const int lane = threadIdx.x & 31, g = threadIdx.x >> 5;
  const int b = blockIdx.y, d = blockIdx.x * 32 + lane;
  const bool dok = d < Dn;
  constexpr int T = SCAN_T;
  float* su = smem;             // [T][32] u
  float* sdl = su + T * 32;     // [T][32] Δ
  float* sdu = sdl + T * 32;    // [T][32] Δ·u
  float* sg = sdu + T * 32;     // [T][32] ĝ = ∂L/∂y
  float* sdsp = sg + T * 32;    // [T][32] ∂Δ/∂δ
  float* sz = sdsp + T * 32;    // [T][32] z
  float* ssz = sz + T * 32;     // [T][32] σ(z)
  float* sdo = ssz + T * 32;    // [T][32] ∂L/∂out
  float* sB = sdo + T * 32;     // [T][NP]
  float* sC = sB + T * NP;      // [T][NP]
  float* sdB = sC + T * NP;     // [T][NP] block partial of dB
  float* sdC = sdB + T * NP;    // [T][NP] block partial of dC
  float* srs = sdC + T * NP;    // [T]
  float* sy = srs + T;          // [G][T][32] per-warp partials of y, s1, s2
  float* ss1 = sy + G * T * 32;
  float* ss2 = ss1 + G * T * 32;
  float* hsub = ss2 + G * T * 32;  // [sub][G][32][NS] state entering each sub-chunk
  float* sfin = hsub + p.sub * NP * 32;  // [2][G][32]

  float A2[NS], Av[NS], mu[NS], dA[NS];
#pragma unroll
  for (int s = 0; s < NS; s++) {
    const int n = g * NS + s;
    Av[s] = load_a(p, d, n);
    A2[s] = Av[s] * LOG2E;
    mu[s] = (p.dlast && dok && n < N) ? p.dlast[((size_t)b * Dn + d) * N + n] : 0.f;
    dA[s] = 0.f;
  }
  const float Dd = (p.D && dok) ? p.D[d] : 0.f;
  const float bias = (p.dbias && dok) ? p.dbias[d] : 0.f;
  float accD = 0.f, accb = 0.f;
  BwdTile<G> tile;

  for (int seg = p.nseg - 1; seg >= 0; seg--) {
    const int ts0 = seg * S, ts1 = min(L, ts0 + S);
    const int nsub = (ts1 - ts0 + T - 1) / T;
    // Pass 1: from the saved state, the state entering every sub-chunk.
    float h[NS];
#pragma unroll
    for (int s = 0; s < NS; s++) {
      const int n = g * NS + s;
      h[s] = (dok && n < N) ? p.ck[(((size_t)b * p.nseg + seg) * Dn + d) * N + n] : 0.f;
    }
    if (nsub > 1) tile.load(p, b, d, dok, ts0, false);
    for (int k = 0; k < nsub; k++) {
      *reinterpret_cast<float4*>(&hsub[((k * G + g) * 32 + lane) * NS]) = make_float4(h[0], h[1], h[2], h[3]);
      if (k == nsub - 1) break;
      const int t0 = ts0 + k * T;
      if (!p.prefetch && k > 0) tile.load(p, b, d, dok, t0, false);
#pragma unroll
      for (int q = 0; q < BwdTile<G>::ITEMS; q++) {
        const int i = threadIdx.x + q * NTH;
        if (i < T * 32) {
          const float x = tile.dl[q] + bias;
          const float dd = (dok && t0 + (i >> 5) < L) ? (p.softplus ? sp_fast(x) : x) : 0.f;
          sdl[i] = dd;
          sdu[i] = dd * tile.u[q];
        }
      }
#pragma unroll
      for (int q = 0; q < BwdTile<G>::BITEMS; q++) {
        const int i = threadIdx.x + q * NTH;
        if (i < T * NP) sB[i] = tile.B[q];
      }
      if (threadIdx.x < T) srs[threadIdx.x] = tile.rs;
      __syncthreads();
      if (p.prefetch && k + 2 < nsub) tile.load(p, b, d, dok, t0 + T, false);
#pragma unroll
      for (int i = 0; i < T; i++) {
        const float dl = sdl[i * 32 + lane], dlu = sdu[i * 32 + lane];
        const bool rs = srs[i] != 0.f;
        const float4 bv = *reinterpret_cast<const float4*>(&sB[i * NP + g * NS]);
        const float bb[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
        for (int s = 0; s < NS; s++) {
          const float a = ex2(dl * A2[s]);
          h[s] = fmaf(a, rs ? 0.f : h[s], dlu * bb[s]);
        }
      }
      __syncthreads();
    }
    // Pass 2: sub-chunks last to first.
    tile.load(p, b, d, dok, ts0 + (nsub - 1) * T, true);
    for (int k = nsub - 1; k >= 0; k--) {
      const int t0 = ts0 + k * T;
      if (!p.prefetch && k < nsub - 1) tile.load(p, b, d, dok, t0, true);
#pragma unroll
      for (int q = 0; q < BwdTile<G>::ITEMS; q++) {
        const int i = threadIdx.x + q * NTH;
        if (i < T * 32) {
          const float x = tile.dl[q] + bias, uu = tile.u[q], go = tile.go[q];
          float dl = 0.f, dsp = 0.f, gh = go, sgz = 0.f;
          if (!(dok && t0 + (i >> 5) < L)) {
            // past the end, or an absent channel: zeros, as loaded
          } else if (p.softplus) {
            dl = sp_fast(x);
            dsp = x > 20.f ? 1.f : sig_fast(x);
          } else {
            dl = x;
            dsp = 1.f;
          }
          if (p.z) {
            sgz = sig_fast(tile.z[q]);
            gh = go * tile.z[q] * sgz;
          }
          su[i] = uu;
          sdl[i] = dl;
          sdu[i] = dl * uu;
          sg[i] = gh;
          sdsp[i] = dsp;
          sz[i] = tile.z[q];
          ssz[i] = sgz;
          sdo[i] = go;
        }
      }
#pragma unroll
      for (int q = 0; q < BwdTile<G>::BITEMS; q++) {
        const int i = threadIdx.x + q * NTH;
        if (i < T * NP) {
          sB[i] = tile.B[q];
          sC[i] = tile.C[q];
        }
      }
      if (threadIdx.x < T) srs[threadIdx.x] = tile.rs;
      __syncthreads();
      if (p.prefetch && k > 0) tile.load(p, b, d, dok, t0 - T, true);
      // Recompute the sub-chunk: hh[i] is the state before step i, hh[T] after the last step.
      float hh[T + 1][NS], ab[T][NS];
      {
        const float4 hv = *reinterpret_cast<const float4*>(&hsub[((k * G + g) * 32 + lane) * NS]);
        hh[0][0] = hv.x;
        hh[0][1] = hv.y;
        hh[0][2] = hv.z;
        hh[0][3] = hv.w;
      }
#pragma unroll
      for (int i = 0; i < T; i++) {
        const float dl = sdl[i * 32 + lane], dlu = sdu[i * 32 + lane];
        const bool rs = srs[i] != 0.f;
        const float4 bv = *reinterpret_cast<const float4*>(&sB[i * NP + g * NS]);
        const float4 cv = *reinterpret_cast<const float4*>(&sC[i * NP + g * NS]);
        const float bb[4] = {bv.x, bv.y, bv.z, bv.w}, cc[4] = {cv.x, cv.y, cv.z, cv.w};
        float y = 0.f;
#pragma unroll
        for (int s = 0; s < NS; s++) {
          ab[i][s] = rs ? 0.f : ex2(dl * A2[s]);  // a reset cuts h_{t-1} off: Ā·h_{t-1} → 0·h_{t-1}
          hh[i + 1][s] = fmaf(ab[i][s], hh[i][s], dlu * bb[s]);
          y = fmaf(cc[s], hh[i + 1][s], y);
        }
        sy[(g * T + i) * 32 + lane] = y;
      }
      // Reverse recurrence over the sub-chunk.
#pragma unroll
      for (int i = T - 1; i >= 0; i--) {
        const float dl = sdl[i * 32 + lane], dlu = sdu[i * 32 + lane], gh = sg[i * 32 + lane];
        const float4 bv = *reinterpret_cast<const float4*>(&sB[i * NP + g * NS]);
        const float4 cv = *reinterpret_cast<const float4*>(&sC[i * NP + g * NS]);
        const float bb[4] = {bv.x, bv.y, bv.z, bv.w}, cc[4] = {cv.x, cv.y, cv.z, cv.w};
        float s1 = 0.f, s2 = 0.f, v[8];
#pragma unroll
        for (int s = 0; s < NS; s++) {
          const float lam = fmaf(cc[s], gh, mu[s]);
          v[s] = lam * dlu;               // dB
          v[s + 4] = gh * hh[i + 1][s];   // dC
          s1 = fmaf(lam, bb[s], s1);
          const float ma = ab[i][s] * lam;  // μ_{t-1}: 0 across a reset, as Ā is
          const float q = ma * hh[i][s];    // Ā·λ·h_{t-1}, 0 after a reset
          s2 = fmaf(Av[s], q, s2);
          dA[s] = fmaf(dl, q, dA[s]);
          mu[s] = ma;
        }
        ss1[(g * T + i) * 32 + lane] = s1;
        ss2[(g * T + i) * 32 + lane] = s2;
        const float r = reduce8(v, lane);
        if ((lane & 3) == 0) {
          const int kk = lane >> 2;
          if (kk < 4) sdB[i * NP + g * NS + kk] = r;
          else sdC[i * NP + g * NS + kk - 4] = r;
        }
      }
      __syncthreads();
      // Per (t, channel): sum the warps' partials, write the token gradients.
      for (int i = threadIdx.x; i < T * 32; i += NTH) {
        const int ti = i >> 5, t = t0 + ti;
        if (dok && t < L) {
          float y = Dd * su[i], s1 = 0.f, s2 = 0.f;
#pragma unroll
          for (int gg = 0; gg < G; gg++) {
            const int j = (gg * T + ti) * 32 + lane;
            y += sy[j];
            s1 += ss1[j];
            s2 += ss2[j];
          }
          const size_t gi = ((size_t)b * L + t) * Dn + d;
          const float gh = sg[i], uu = su[i];
          if (p.du) p.du[gi] = fmaf(Dd, gh, sdl[i] * s1);
          const float ddl = fmaf(uu, s1, s2) * sdsp[i];
          if (p.ddelta) p.ddelta[gi] = ddl;
          if (p.dz) {
            const float zz = sz[i], sgz = ssz[i];
            p.dz[gi] = sdo[i] * y * sgz * (1.f + zz * (1.f - sgz));
          }
          accD = fmaf(gh, uu, accD);
          accb += ddl;
        }
      }
      for (int i = threadIdx.x; i < T * NP; i += NTH) {
        const int t = t0 + i / NP, n = i % NP;
        if (t < L && n < N) {
          const size_t gi = (((size_t)blockIdx.x * p.batch + b) * L + t) * N + n;
          p.dBpart[gi] = sdB[i];
          p.dCpart[gi] = sdC[i];
        }
      }
      __syncthreads();
    }
  }
#pragma unroll
  for (int s = 0; s < NS; s++) {
    const int n = g * NS + s;
    if (dok && n < N) {
      const size_t gi = ((size_t)b * Dn + d) * N + n;
      p.dApart[gi] = dA[s];
      if (p.dh0) p.dh0[gi] = mu[s];
    }
  }
  sfin[g * 32 + lane] = accD;
  sfin[(G + g) * 32 + lane] = accb;
  __syncthreads();
  if (g == 0 && dok) {
    float sD = 0.f, sb = 0.f;
    for (int gg = 0; gg < G; gg++) {
      sD += sfin[gg * 32 + lane];
      sb += sfin[(G + gg) * 32 + lane];
    }
    p.dDpart[(size_t)b * Dn + d] = sD;
    p.dbpart[(size_t)b * Dn + d] = sb;
  }
}

// The kernels, one per number of warps G (1, 2, 4, 8, 16: N up to 4, 8, 16, 32, 64). From G = 4 on,
// the registers of a thread are capped (96 forward, 128 backward at G = 4) so that a multiprocessor
// holds as many blocks as their shared memory allows (5 and 4 of 128 threads), without spills.
#define SCAN_KERNELS(G)                                                                                        \
  extern "C" __global__ void __launch_bounds__(32 * G, G >= 4 ? 20 / G : 1) scan_fwd_g##G(const ScanParams p) {    \
    scan_fwd_impl<G>(p);                                                                                        \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(32 * G, G >= 4 ? 16 / G : 1) scan_bwd_g##G(const ScanParams p) {    \
    scan_bwd_impl<G>(p);                                                                                        \
  }
SCAN_KERNELS(1)
SCAN_KERNELS(2)
SCAN_KERNELS(4)
SCAN_KERNELS(8)
SCAN_KERNELS(16)

struct ScanReduceParams {
  const float *dBpart, *dCpart, *dApart, *dDpart, *dbpart, *A;
  float *dB, *dC, *dA, *dD, *dbias;
  long long rows;  // batch·len·N elements of dB and dC
  int parts;       // channel blocks, ceil(ch/32)
  int batch, ch, nstate, alog;
  int pad;
};
static_assert(sizeof(ScanReduceParams) == 120, "ScanReduceParams layout (see scan.go)");

// scan_reduce_bc: dB[e] = Σ_k dBpart[k][e] over the channel blocks k in order (dC the same).
// One thread per element e of (batch, len, N).
extern "C" __global__ void scan_reduce_bc(const ScanReduceParams p) {
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= p.rows) return;
  float sb = 0.f, sc = 0.f;
  for (int k = 0; k < p.parts; k++) {
    sb += p.dBpart[k * p.rows + e];
    sc += p.dCpart[k * p.rows + e];
  }
  if (p.dB) p.dB[e] = sb;
  if (p.dC) p.dC[e] = sc;
}

// scan_reduce_params: dA[d,n] = Σ_b dApart[b,d,n] (times A for A_log), dD[d] = Σ_b dDpart[b,d],
// dbias[d] = Σ_b dbpart[b,d], the batch added in order. One thread per (d, n).
extern "C" __global__ void scan_reduce_params(const ScanReduceParams p) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  const int dn = p.ch * p.nstate;
  if (e >= dn) return;
  if (p.dA) {
    float s = 0.f;
    for (int b = 0; b < p.batch; b++) s += p.dApart[(size_t)b * dn + e];
    if (p.alog) s *= -expf(p.A[e]);
    p.dA[e] = s;
  }
  if (e < p.ch) {
    float sD = 0.f, sb = 0.f;
    for (int b = 0; b < p.batch; b++) {
      sD += p.dDpart[(size_t)b * p.ch + e];
      sb += p.dbpart[(size_t)b * p.ch + e];
    }
    if (p.dD) p.dD[e] = sD;
    if (p.dbias) p.dbias[e] = sb;
  }
}
