// Shared definitions of the kernels. Every kernel takes one argument, a parameter struct passed
// by value; the Go side (package cuda) declares the same struct field for field, pointers as
// uint64 and int/float as int32/float32, 8-byte fields first so that neither side pads. Each
// struct's size is checked by a static_assert here and by a Go test there.
//
// With MAMBA_HOST_EMULATION defined the same sources compile as host C++ for the emulator of
// ../emu (a stand-in libcuda that runs every CUDA thread as a host thread); the few device-only
// constructs below have host versions there.
#pragma once
#include <stdint.h>

#ifdef MAMBA_HOST_EMULATION
#include "hostemu.h"
#else
#include <cuda_bf16.h>

// DYNAMIC_SMEM declares the block's dynamic shared memory, STATIC_SMEM a fixed shared array.
#define DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#define STATIC_SMEM(T, name, n) __shared__ T name[n]

// ex2 is 2^x by the special-function unit (relative error about 2^-22, subnormals flushed).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// dyn_smem_bytes is the dynamic shared memory the block was launched with.
__device__ __forceinline__ unsigned dyn_smem_bytes() {
  unsigned r;
  asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
  return r;
}
#endif

#define LOG2E 1.4426950408889634f

// sigmoidf is σ(x) = 1/(1 + e^{-x}); e^{-x} = inf gives 0.
__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

// warp_sum returns the sum of v over the 32 lanes, the same value in every lane, added in a
// fixed butterfly order.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// block_sum returns the sum of v over the block (blockDim.x a multiple of 32, at most 1024)
// in thread 0 and every other thread; the order is fixed: warps butterfly, then warp 0 adds
// the warp sums in a butterfly. red must hold 32 floats; the call ends with a barrier, so red
// can be reused at once.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) red[w] = v;
  __syncthreads();
  float s = lane < nw ? red[lane] : 0.f;
  s = warp_sum(s);
  __syncthreads();
  return s;
}

__device__ __forceinline__ double block_sum_d(double v, double* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum_d(v);
  if (lane == 0) red[w] = v;
  __syncthreads();
  double s = lane < nw ? red[lane] : 0.0;
  s = warp_sum_d(s);
  __syncthreads();
  return s;
}

__device__ __forceinline__ float block_max(float v, float* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) red[w] = v;
  __syncthreads();
  float s = lane < nw ? red[lane] : -INFINITY;
  s = warp_max(s);
  __syncthreads();
  return s;
}
