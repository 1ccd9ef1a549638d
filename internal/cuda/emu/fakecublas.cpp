// A stand-in for libcublas that multiplies on the host, column-major as cuBLAS does (see README.md
// here). beta = 0 leaves C unread, as in cuBLAS, so poisoned outputs stay a valid test.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

float load(const void* p, int type, long i) {
  if (type == 14) {  // CUDA_R_16BF
    uint32_t b = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  return static_cast<const float*>(p)[i];
}

void store(void* p, int type, long i, float v) {
  if (type == 14) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    static_cast<uint16_t*>(p)[i] = uint16_t((b + 0x7fffu + ((b >> 16) & 1)) >> 16);
    return;
  }
  static_cast<float*>(p)[i] = v;
}

int gemm(int ta, int tb, int m, int n, int k, float alpha, const void* A, int at, int lda, const void* B, int bt, int ldb,
         float beta, void* C, int ct, int ldc) {
  if (m < 0 || n < 0 || k < 0 || lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m) return 7;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int p = 0; p < k; p++) {
        float a = ta ? load(A, at, p + long(i) * lda) : load(A, at, i + long(p) * lda);
        float b = tb ? load(B, bt, j + long(p) * ldb) : load(B, bt, p + long(j) * ldb);
        s += double(a) * b;
      }
      float v = alpha * float(s);
      if (beta != 0) v += beta * load(C, ct, i + long(j) * ldc);
      store(C, ct, i + long(j) * ldc, v);
    }
  return 0;
}

}  // namespace

// A product with its arguments, submitted to the stand-in driver's stream (so that it is recorded
// while a graph is captured).
struct Gemm {
  int ta, tb, m, n, k;
  float alpha, beta;
  const void *A, *B;
  void* C;
  int at, bt, ct, lda, ldb, ldc;
};

extern "C" int emu_submit(void (*fn)(void*), void* arg);

int submitGemm(int ta, int tb, int m, int n, int k, float alpha, const void* A, int at, int lda, const void* B, int bt,
               int ldb, float beta, void* C, int ct, int ldc) {
  if (m < 0 || n < 0 || k < 0 || lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m) return 7;
  // Freed after an immediate run; kept for a captured one, which a graph may replay (the few
  // captured products of a test process are not reclaimed).
  Gemm* g = new Gemm{ta, tb, m, n, k, alpha, beta, A, B, C, at, bt, ct, lda, ldb, ldc};
  const int kept = emu_submit(
      [](void* p) {
        const Gemm& x = *static_cast<const Gemm*>(p);
        gemm(x.ta, x.tb, x.m, x.n, x.k, x.alpha, x.A, x.at, x.lda, x.B, x.bt, x.ldb, x.beta, x.C, x.ct, x.ldc);
      },
      g);
  if (!kept) delete g;
  return 0;
}

extern "C" {
int cublasCreate_v2(void** h) { *h = reinterpret_cast<void*>(0x10); return 0; }
int cublasDestroy_v2(void*) { return 0; }
int cublasSetStream_v2(void*, void*) { return 0; }
int cublasSetMathMode(void*, int mode) { return mode == 0 || mode == 3 ? 0 : 7; }
int cublasGetVersion_v2(void*, int* v) { *v = 130000; return 0; }
int cublasSgemm_v2(void*, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda, const float* B,
                   int ldb, const float* beta, float* C, int ldc) {
  return submitGemm(ta, tb, m, n, k, *alpha, A, 0, lda, B, 0, ldb, *beta, C, 0, ldc);
}
int cublasGemmEx(void*, int ta, int tb, int m, int n, int k, const void* alpha, const void* A, int at, int lda, const void* B,
                 int bt, int ldb, const void* beta, void* C, int ct, int ldc, int compute, int) {
  if (compute != 68) return 7;
  return submitGemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), A, at, lda, B, bt, ldb, *static_cast<const float*>(beta),
                    C, ct, ldc);
}
const char* cublasGetStatusName(int s) {
  switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
  }
  return "CUBLAS_STATUS_INTERNAL_ERROR";
}
}
