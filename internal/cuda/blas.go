package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// Math selects how cuBLAS multiplies float32 matrices.
type Math int

const (
	// MathFP32 multiplies in full float32 (cuBLAS's default math mode).
	MathFP32 Math = iota
	// MathTF32 lets cuBLAS use the tensor cores' TF32 (10-bit mantissa inputs, float32 sums).
	MathTF32
)

// cuBLAS enumerations (cublas_api.h, library_types.h).
const (
	cublasOpN         = 0
	cublasOpT         = 1
	cublasDefaultMath = 0
	cublasTF32Math    = 3
	cudaR32F          = 0
	cudaR16BF         = 14
	cublasCompute32F  = 68
	cublasGemmDefault = -1
	bf16Bytes         = 2
	float32Bytes      = 4
	maxInt32          = math.MaxInt32
)

// SetMath sets the math mode of the device's float32 GEMMs.
func (d *Device) SetMath(m Math) error {
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.setMath(m)
}

func (d *Device) setMath(m Math) error {
	mode := cublasDefaultMath
	if m == MathTF32 {
		mode = cublasTF32Math
	}
	if err := d.blas.check("cublasSetMathMode", call(d.blas.cublasSetMathMode, d.handle, uintptr(mode))); err != nil {
		return err
	}
	d.math = m
	return nil
}

// useMath sets the math mode unless it is set already (the caller has entered).
func (d *Device) useMath(m Math) error {
	if d.math == m {
		return nil
	}
	return d.setMath(m)
}

// fitsMatrix reports whether an r×c row-major matrix with leading dimension ld fits in n elements.
func fitsMatrix(r, c, ld, n int) bool {
	return ld >= max(1, c) && ld <= maxInt32 && n >= ld*(r-1)+c
}

// checkGemm validates a row-major C = op(A)·op(B) on buffers of elements of the given sizes.
func checkGemm(tA, tB bool, m, n, k int, a Buffer, lda, ea int, b Buffer, ldb, eb int, c Buffer, ldc, ec int) error {
	if m < 1 || n < 1 || k < 1 || m > maxInt32 || n > maxInt32 || k > maxInt32 {
		return fmt.Errorf("cuda: Gemm sizes m=%d n=%d k=%d must be in [1, 2^31)", m, n, k)
	}
	ar, ac := m, k
	if tA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB {
		br, bc = n, k
	}
	switch {
	case a.Nil() || b.Nil() || c.Nil():
		return fmt.Errorf("cuda: Gemm with a nil operand")
	case !fitsMatrix(ar, ac, lda, a.bytes/ea):
		return fmt.Errorf("cuda: Gemm: A (%d×%d, lda %d) does not fit its buffer of %d bytes", ar, ac, lda, a.bytes)
	case !fitsMatrix(br, bc, ldb, b.bytes/eb):
		return fmt.Errorf("cuda: Gemm: B (%d×%d, ldb %d) does not fit its buffer of %d bytes", br, bc, ldb, b.bytes)
	case !fitsMatrix(m, n, ldc, c.bytes/ec):
		return fmt.Errorf("cuda: Gemm: C (%d×%d, ldc %d) does not fit its buffer of %d bytes", m, n, ldc, c.bytes)
	}
	return nil
}

func op(t bool) uintptr {
	if t {
		return cublasOpT
	}
	return cublasOpN
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C on row-major float32 matrices (op(X) = Xᵀ when the
// flag is set): op(A) is m×k, op(B) k×n, C m×n, with leading dimensions lda, ldb, ldc (elements
// between rows). cuBLAS is column-major, so it computes Cᵀ = op(B)ᵀ·op(A)ᵀ: the same call with the
// operands swapped.
func (d *Device) Gemm(tA, tB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int) error {
	if err := checkGemm(tA, tB, m, n, k, a, lda, float32Bytes, b, ldb, float32Bytes, c, ldc, float32Bytes); err != nil {
		return err
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemm is Gemm for a caller that has validated and entered.
func (d *Device) gemm(tA, tB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int) error {
	d.alpha = [2]float32{alpha, beta}
	r := call(d.blas.cublasSgemm, d.handle, op(tB), op(tA), uintptr(n), uintptr(m), uintptr(k),
		uintptr(unsafe.Pointer(&d.alpha[0])), uintptr(b.ptr), uintptr(ldb), uintptr(a.ptr), uintptr(lda),
		uintptr(unsafe.Pointer(&d.alpha[1])), uintptr(c.ptr), uintptr(ldc))
	if err := d.blas.check("cublasSgemm_v2", r); err != nil {
		return err
	}
	if d.SyncEach {
		return d.api.check("cuStreamSynchronize after cublasSgemm_v2", call(d.api.cuStreamSynchronize, d.stream))
	}
	return nil
}

// GemmBF16 is Gemm with bfloat16 A and B, float32 accumulation, and C in float32 (cBF16 false) or
// bfloat16.
func (d *Device) GemmBF16(tA, tB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int, cBF16 bool) error {
	ec := float32Bytes
	if cBF16 {
		ec = bf16Bytes
	}
	if err := checkGemm(tA, tB, m, n, k, a, lda, bf16Bytes, b, ldb, bf16Bytes, c, ldc, ec); err != nil {
		return err
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.gemmBF16(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, cBF16)
}

// gemmBF16 is GemmBF16 for a caller that has validated and entered.
func (d *Device) gemmBF16(tA, tB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int, cBF16 bool) error {
	ctype := uintptr(cudaR32F)
	if cBF16 {
		ctype = cudaR16BF
	}
	d.alpha = [2]float32{alpha, beta}
	algo := int32(cublasGemmDefault)
	r := call(d.blas.cublasGemmEx, d.handle, op(tB), op(tA), uintptr(n), uintptr(m), uintptr(k),
		uintptr(unsafe.Pointer(&d.alpha[0])), uintptr(b.ptr), cudaR16BF, uintptr(ldb), uintptr(a.ptr), cudaR16BF, uintptr(lda),
		uintptr(unsafe.Pointer(&d.alpha[1])), uintptr(c.ptr), ctype, uintptr(ldc), cublasCompute32F, uintptr(uint32(algo)))
	if err := d.blas.check("cublasGemmEx", r); err != nil {
		return err
	}
	if d.SyncEach {
		return d.api.check("cuStreamSynchronize after cublasGemmEx", call(d.api.cuStreamSynchronize, d.stream))
	}
	return nil
}
