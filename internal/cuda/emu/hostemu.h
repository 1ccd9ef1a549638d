// Host versions of the CUDA constructs the kernels use, for the emulator of fakecuda.cpp.
// Every CUDA thread of a block is a host thread; __syncthreads and the warp shuffles are barriers
// that count only the threads still running, as on the GPU.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

struct __nv_bfloat16 {
  uint16_t x;
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{uint16_t((b >> 16) | 0x40)};
  return __nv_bfloat16{uint16_t((b + 0x7fffu + ((b >> 16) & 1)) >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t b = uint32_t(h.x) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

using std::max;
using std::min;

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline float __double2float_rn(double a) { return float(a); }
inline float ex2(float x) { return std::exp2(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }

void __syncthreads();
double emu_shfl(double v, int src_lane);
unsigned dyn_smem_bytes();
char* emu_dyn_smem();
char* emu_static_smem(size_t bytes, int id);
[[noreturn]] void __trap();

template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask) {
  return T(emu_shfl(double(v), int(threadIdx.x & 31) ^ mask));
}
template <class T>
inline T __shfl_sync(unsigned, T v, int src) {
  return T(emu_shfl(double(v), src & 31));
}

#define DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(emu_dyn_smem())
#define STATIC_SMEM(T, name, n) T* name = reinterpret_cast<T*>(emu_static_smem(sizeof(T) * (n), __LINE__))
