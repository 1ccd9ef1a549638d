package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/mambago/mamba/internal/kernel"
)

// Linear is kernel.Linear on the device: y = x·w[Lo:Hi]ᵀ (+ bias[Lo:Hi]) (+ r) for x (Rows, In),
// w (Out, In), bias (Out), r (Rows, Hi−Lo), rows Lo..Hi of a weight so that the parts of one
// projection stay separate outputs. Inputs [x, w, bias if Bias, r if Residual]; gradients [dx, dw,
// dbias if Bias, dr if Residual]:
//
//	dx = g·w[Lo:Hi]     dw[Lo:Hi] = gᵀ·x (0 in the other rows)     dbias[Lo:Hi] = Σ_rows g (0 elsewhere)     dr = g
//
// The residual is copied into y and the product added to it (beta = 1); the bias is added after.
// The products run in the kernel's precision.
type Linear struct {
	d   *Device
	s   kernel.Linear
	mm  matmul
	cs  *colsum
	add function
	p   eltParams
}

// NewLinear returns the float32 projection of rows × in inputs by rows lo..hi of an out × in weight
// (in the device's math mode, SetMath).
func (d *Device) NewLinear(rows, in, out, lo, hi int, bias bool) (*Linear, error) {
	prec := FP32
	if d.math == MathTF32 {
		prec = TF32
	}
	return d.newLinear(kernel.Linear{Rows: rows, In: in, Out: out, Lo: lo, Hi: hi, Bias: bias}, prec, nil)
}

// newLinear returns the kernel of s; sc is the scratch of a BF16 one.
func (d *Device) newLinear(s kernel.Linear, prec Precision, sc *scratch) (*Linear, error) {
	if s.Rows < 1 || s.In < 1 || s.Out < 1 || s.Lo < 0 || s.Hi > s.Out || s.Lo >= s.Hi ||
		!fits(math.MaxInt32, s.Rows, max(s.In, s.Out)) || !fits(math.MaxInt32, s.Out, s.In) {
		return nil, fmt.Errorf("cuda: Linear: x %d × %d times rows [%d, %d) of w %d × %d transposed is not defined", s.Rows, s.In, s.Lo, s.Hi, s.Out, s.In)
	}
	k := &Linear{d: d, s: s, mm: matmul{d: d, prec: prec, sc: sc}, add: d.function("bias_add")}
	if prec == BF16 {
		n := s.Hi - s.Lo
		// Forward x·wᵀ, backward g·w and gᵀ·x: the largest pair of operands.
		need := max(scratchBytes(s.Rows*s.In, n*s.In), scratchBytes(s.Rows*n, n*s.In), scratchBytes(s.Rows*n, s.Rows*s.In))
		if err := sc.reserve(need); err != nil {
			return nil, err
		}
	}
	if s.Bias {
		var err error
		if k.cs, err = d.newColsum(s.Rows, s.Hi-s.Lo); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Close frees the op's device memory.
func (k *Linear) Close() error {
	if k.cs == nil {
		return nil
	}
	return k.cs.close()
}

// parts returns x, w, bias (or nil) and r (or nil) of in, after checking their sizes.
func (k *Linear) parts(in []Buffer) (x, w, bias, r Buffer, err error) {
	s := k.s
	want := 2 + int(b2i(s.Bias)) + int(b2i(s.Residual))
	if err := countArgs("Linear", "inputs", in, want); err != nil {
		return x, w, bias, r, err
	}
	x, w, i := in[0], in[1], 2
	if s.Bias {
		bias, i = in[i], i+1
	}
	if s.Residual {
		r = in[i]
	}
	n := s.Hi - s.Lo
	err = firstErr(need("Linear", "x", x, s.Rows*s.In, 4, false), need("Linear", "w", w, s.Out*s.In, 4, false),
		need("Linear", "bias", bias, s.Out, 4, !s.Bias), need("Linear", "residual", r, s.Rows*n, 4, !s.Residual))
	return x, w, bias, r, err
}

// Forward writes y (rows, hi−lo).
func (k *Linear) Forward(in []Buffer, y Buffer) error {
	s := k.s
	n := s.Hi - s.Lo
	x, w, bias, r, err := k.parts(in)
	if err := firstErr(err, need("Linear", "y", y, s.Rows*n, 4, false)); err != nil {
		return err
	}
	d := k.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	beta := float32(0)
	if s.Residual {
		if err := d.copyAsync(y, r); err != nil {
			return err
		}
		beta = 1
	}
	wp := w.Slice32(s.Lo*s.In, s.Hi*s.In)
	if err := k.mm.run(false, true, s.Rows, n, s.In, x, s.In, wp, s.In, beta, y, n); err != nil {
		return err
	}
	if !s.Bias {
		return nil
	}
	k.p = eltParams{y: y.ptr, b: bias.ptr + uint64(4*s.Lo), n: int64(s.Rows * n), cols: int32(n)}
	return d.launch(k.add.name, k.add.f, d.elems(s.Rows*n), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}

// Backward writes din = [dx, dw, dbias if Bias, dr if Residual] (any may be nil) from dy (rows, hi−lo).
func (k *Linear) Backward(in []Buffer, dy Buffer, din []Buffer) error {
	s := k.s
	n := s.Hi - s.Lo
	x, w, _, _, err := k.parts(in)
	err = firstErr(err, countArgs("Linear", "gradients", din, len(in)), need("Linear", "dy", dy, s.Rows*n, 4, false))
	if err != nil {
		return err
	}
	dx, dw, db, dr, _ := k.parts(din)
	for _, c := range []struct {
		name string
		b    Buffer
		n    int
	}{{"dx", dx, s.Rows * s.In}, {"dw", dw, s.Out * s.In}, {"dbias", db, s.Out}, {"dr", dr, s.Rows * n}} {
		if err := need("Linear", c.name, c.b, c.n, 4, true); err != nil {
			return err
		}
	}
	d := k.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	wp := w.Slice32(s.Lo*s.In, s.Hi*s.In)
	if !dx.Nil() { // dx (rows, in) = dy (rows, n) · w[lo:hi] (n, in)
		if err := k.mm.run(false, false, s.Rows, s.In, n, dy, n, wp, s.In, 0, dx, s.In); err != nil {
			return err
		}
	}
	part := s.Lo > 0 || s.Hi < s.Out
	if !dw.Nil() { // dw[lo:hi] (n, in) = dyᵀ (n, rows) · x (rows, in)
		if part {
			if err := d.zeroAsync(dw); err != nil {
				return err
			}
		}
		if err := k.mm.run(true, false, n, s.In, s.Rows, dy, n, x, s.In, 0, dw.Slice32(s.Lo*s.In, s.Hi*s.In), s.In); err != nil {
			return err
		}
	}
	if !db.Nil() {
		if part {
			if err := d.zeroAsync(db); err != nil {
				return err
			}
		}
		if err := k.cs.run(dy, n, Buffer{}, 0, Buffer{}, db.Slice32(s.Lo, s.Hi)); err != nil {
			return err
		}
	}
	if !dr.Nil() {
		return d.copyAsync(dr, dy)
	}
	return nil
}

// GEMM is kernel.GEMM on the device: C = op(A)·op(B) for row-major A, B, with
//
//	dA = dC·op(B)ᵀ (op(B)·dCᵀ for a transposed A)     dB = op(A)ᵀ·dC (dCᵀ·op(A) for a transposed B)
type GEMM struct {
	s  kernel.GEMM
	mm matmul
}

func (d *Device) newGEMM(s kernel.GEMM, prec Precision, sc *scratch) (*GEMM, error) {
	if !fits(math.MaxInt32, s.M, s.K) || !fits(math.MaxInt32, s.K, s.N) || !fits(math.MaxInt32, s.M, s.N) {
		return nil, fmt.Errorf("cuda: %s is too large", s)
	}
	if prec == BF16 {
		a, b, c := s.M*s.K, s.K*s.N, s.M*s.N
		if err := sc.reserve(max(scratchBytes(a, b), scratchBytes(c, b), scratchBytes(a, c))); err != nil {
			return nil, err
		}
	}
	return &GEMM{s: s, mm: matmul{d: d, prec: prec, sc: sc}}, nil
}

// Close frees nothing: the op has no device memory of its own.
func (k *GEMM) Close() error { return nil }

// ld returns the leading dimensions of A (M×K, or K×M transposed) and B (K×N, or N×K).
func (k *GEMM) ld() (lda, ldb int) {
	s := k.s
	lda, ldb = s.K, s.N
	if s.TransA {
		lda = s.M
	}
	if s.TransB {
		ldb = s.K
	}
	return lda, ldb
}

func (k *GEMM) check(in []Buffer, c Buffer) error {
	s := k.s
	return firstErr(countArgs("GEMM", "inputs", in, 2), need("GEMM", "A", arg(in, 0), s.M*s.K, 4, false),
		need("GEMM", "B", arg(in, 1), s.K*s.N, 4, false), need("GEMM", "C", c, s.M*s.N, 4, false))
}

// Forward writes C.
func (k *GEMM) Forward(in []Buffer, c Buffer) error {
	if err := k.check(in, c); err != nil {
		return err
	}
	s, d := k.s, k.mm.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	lda, ldb := k.ld()
	return k.mm.run(s.TransA, s.TransB, s.M, s.N, s.K, in[0], lda, in[1], ldb, 0, c, s.N)
}

// Backward writes din = [dA, dB] (either may be nil).
func (k *GEMM) Backward(in []Buffer, dc Buffer, din []Buffer) error {
	s, d := k.s, k.mm.d
	if err := firstErr(k.check(in, dc), countArgs("GEMM", "gradients", din, 2), need("GEMM", "dA", din[0], s.M*s.K, 4, true),
		need("GEMM", "dB", din[1], s.K*s.N, 4, true)); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	lda, ldb := k.ld()
	a, b := in[0], in[1]
	if da := din[0]; !da.Nil() {
		var err error
		if !s.TransA { // dA (M×K) = dC (M×N) · op(B)ᵀ (N×K)
			err = k.mm.run(false, !s.TransB, s.M, s.K, s.N, dc, s.N, b, ldb, 0, da, s.K)
		} else { // dA (K×M) = op(B) (K×N) · dCᵀ (N×M)
			err = k.mm.run(s.TransB, true, s.K, s.M, s.N, b, ldb, dc, s.N, 0, da, s.M)
		}
		if err != nil {
			return err
		}
	}
	if db := din[1]; !db.Nil() {
		if !s.TransB { // dB (K×N) = op(A)ᵀ (K×M) · dC (M×N)
			return k.mm.run(!s.TransA, false, s.K, s.N, s.M, a, lda, dc, s.N, 0, db, s.N)
		}
		// dB (N×K) = dCᵀ (N×M) · op(A) (M×K)
		return k.mm.run(true, s.TransA, s.N, s.K, s.M, dc, s.N, a, lda, 0, db, s.K)
	}
	return nil
}
