package cuda

import (
	"fmt"
	"strings"
)

// Precision is how a Backend's kernels multiply matrices. Everything else (the scan and its state,
// norms, reductions, the loss, the optimizer and its master weights) is float32 whatever it is.
type Precision int

const (
	// FP32 multiplies in float32 (cublasSgemm in its default math mode).
	FP32 Precision = iota
	// TF32 multiplies float32 matrices on the tensor cores: operands rounded to TF32 (10-bit
	// mantissa), float32 sums (cublasSgemm in CUBLAS_TF32_TENSOR_OP_MATH).
	TF32
	// BF16 rounds both operands of every product to bfloat16 (8-bit mantissa, in a scratch buffer)
	// and multiplies them with float32 sums into a float32 result (cublasGemmEx). Activations,
	// gradients and weights stay float32 in memory; only the products' inputs are bfloat16.
	BF16
)

// Precisions lists the precisions by name, in order.
var Precisions = []string{"fp32", "tf32", "bf16"}

func (p Precision) String() string {
	if p >= 0 && int(p) < len(Precisions) {
		return Precisions[p]
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// ParsePrecision reads "fp32", "tf32" or "bf16".
func ParsePrecision(s string) (Precision, error) {
	for i, n := range Precisions {
		if s == n {
			return Precision(i), nil
		}
	}
	return 0, fmt.Errorf("precision %q: want %s", s, strings.Join(Precisions, ", "))
}

// scratch is device memory that kernels use only inside one Forward or Backward call (the bfloat16
// copies of a product's operands), shared by every kernel of a Backend: the kernels of one device run
// one at a time, in stream order. It grows while kernels are built; kernels read buf when they run.
type scratch struct {
	d   *Device
	buf Buffer
}

// reserve makes the scratch at least bytes long (freeing the smaller one: call it only while no
// kernel runs, when kernels are built).
func (s *scratch) reserve(bytes int) error {
	if bytes <= s.buf.bytes {
		return nil
	}
	if err := s.d.Free(s.buf); err != nil {
		return err
	}
	s.buf = Buffer{}
	b, err := s.d.Alloc(bytes)
	if err != nil {
		return err
	}
	s.buf = b
	return nil
}

func (s *scratch) close() error {
	err := s.d.Free(s.buf)
	s.buf = Buffer{}
	return err
}

// bf16Align rounds a byte count up to 256, so that every operand in the scratch starts aligned.
func bf16Align(n int) int { return (n + 255) / 256 * 256 }

// matmul multiplies row-major float32 matrices in one precision: C = op(A)·op(B) + beta·C.
type matmul struct {
	d    *Device
	prec Precision
	sc   *scratch // BF16: the operands' bfloat16 copies
}

// scratchBytes is the scratch a BF16 product with operands of na and nb elements needs.
func scratchBytes(na, nb int) int { return bf16Align(2*na) + bf16Align(2*nb) }

// run computes the product; a and b are exactly the operands' elements (na = a.Len32()). The caller
// has entered the context.
func (m *matmul) run(tA, tB bool, mm, n, k int, a Buffer, lda int, b Buffer, ldb int, beta float32, c Buffer, ldc int) error {
	d := m.d
	if m.prec != BF16 {
		want := MathFP32
		if m.prec == TF32 {
			want = MathTF32
		}
		if err := d.useMath(want); err != nil {
			return err
		}
		return d.gemm(tA, tB, mm, n, k, 1, a, lda, b, ldb, beta, c, ldc)
	}
	na, nb := a.Len32(), b.Len32()
	if m.sc.buf.bytes < scratchBytes(na, nb) {
		return fmt.Errorf("cuda: bf16 product of %d and %d elements: the scratch holds %d bytes", na, nb, m.sc.buf.bytes)
	}
	ab := m.sc.buf.Slice(0, 2*na)
	off := bf16Align(2 * na)
	bb := m.sc.buf.Slice(off, off+2*nb)
	if err := firstErr(d.toBF16(ab, a, na), d.toBF16(bb, b, nb)); err != nil {
		return err
	}
	return d.gemmBF16(tA, tB, mm, n, k, 1, ab, lda, bb, ldb, beta, c, ldc, false)
}
