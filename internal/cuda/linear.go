package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// Linear is y = x·w[Lo:Hi]ᵀ (+ bias[Lo:Hi]) for x (Rows, In), w (Out, In), bias (Out): rows Lo..Hi
// of a weight, so that the parts of one projection stay separate outputs. Inputs [x, w, bias if
// Bias]; gradients [dx, dw, dbias if Bias]:
//
//	dx = g·w[Lo:Hi]     dw[Lo:Hi] = gᵀ·x (0 in the other rows)     dbias[Lo:Hi] = Σ_rows g (0 elsewhere)
//
// The products go through cuBLAS in the device's math mode (SetMath).
type Linear struct {
	d                     *Device
	rows, in, out, lo, hi int
	bias                  bool
	cs                    *colsum
	add                   kernel
	p                     eltParams
}

// NewLinear returns the projection of rows × in inputs by rows lo..hi of an out × in weight.
func (d *Device) NewLinear(rows, in, out, lo, hi int, bias bool) (*Linear, error) {
	if rows < 1 || in < 1 || out < 1 || lo < 0 || hi > out || lo >= hi || !fits(math.MaxInt32, rows, max(in, out)) || !fits(math.MaxInt32, out, in) {
		return nil, fmt.Errorf("cuda: Linear: x %d × %d times rows [%d, %d) of w %d × %d transposed is not defined", rows, in, lo, hi, out, in)
	}
	k := &Linear{d: d, rows: rows, in: in, out: out, lo: lo, hi: hi, bias: bias, add: d.kernel("bias_add")}
	if bias {
		var err error
		if k.cs, err = d.newColsum(rows, hi-lo); err != nil {
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

func (k *Linear) check(in []Buffer) error {
	want := 2 + int(b2i(k.bias))
	if err := countArgs("Linear", "inputs", in, want); err != nil {
		return err
	}
	err := firstErr(need("Linear", "x", in[0], k.rows*k.in, 4, false), need("Linear", "w", in[1], k.out*k.in, 4, false))
	if k.bias {
		err = firstErr(err, need("Linear", "bias", in[2], k.out, 4, false))
	}
	return err
}

// Forward writes y (rows, hi−lo).
func (k *Linear) Forward(in []Buffer, y Buffer) error {
	n := k.hi - k.lo
	if err := firstErr(k.check(in), need("Linear", "y", y, k.rows*n, 4, false)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	w := in[1].Slice32(k.lo*k.in, k.hi*k.in)
	if err := d.gemm(false, true, k.rows, n, k.in, 1, in[0], k.in, w, k.in, 0, y, n); err != nil {
		return err
	}
	if !k.bias {
		return nil
	}
	k.p = eltParams{y: y.ptr, b: in[2].ptr + uint64(4*k.lo), n: int64(k.rows * n), cols: int32(n)}
	return d.launch(k.add.name, k.add.f, d.elems(k.rows*n), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}

// Backward writes din = [dx, dw, dbias if Bias] (any may be nil) from dy (rows, hi−lo).
func (k *Linear) Backward(in []Buffer, dy Buffer, din []Buffer) error {
	n := k.hi - k.lo
	want := 2 + int(b2i(k.bias))
	err := firstErr(k.check(in), countArgs("Linear", "gradients", din, want), need("Linear", "dy", dy, k.rows*n, 4, false))
	if err == nil {
		err = firstErr(need("Linear", "dx", din[0], k.rows*k.in, 4, true), need("Linear", "dw", din[1], k.out*k.in, 4, true))
	}
	if err == nil && k.bias {
		err = need("Linear", "dbias", din[2], k.out, 4, true)
	}
	if err != nil {
		return err
	}
	d := k.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	w := in[1].Slice32(k.lo*k.in, k.hi*k.in)
	if !din[0].Nil() { // dx (rows, in) = dy (rows, n) · w[lo:hi] (n, in)
		if err := d.gemm(false, false, k.rows, k.in, n, 1, dy, n, w, k.in, 0, din[0], k.in); err != nil {
			return err
		}
	}
	if dw := din[1]; !dw.Nil() { // dw[lo:hi] (n, in) = dyᵀ (n, rows) · x (rows, in)
		if k.lo > 0 || k.hi < k.out {
			if err := d.api.check("cuMemsetD8Async", call(d.api.cuMemsetD8Async, uintptr(dw.ptr), 0, uintptr(dw.bytes), d.stream)); err != nil {
				return err
			}
		}
		if err := d.gemm(true, false, n, k.in, k.rows, 1, dy, n, in[0], k.in, 0, dw.Slice32(k.lo*k.in, k.hi*k.in), k.in); err != nil {
			return err
		}
	}
	if db := arg(din, 2); k.bias && !db.Nil() {
		if k.lo > 0 || k.hi < k.out {
			if err := d.api.check("cuMemsetD8Async", call(d.api.cuMemsetD8Async, uintptr(db.ptr), 0, uintptr(db.bytes), d.stream)); err != nil {
				return err
			}
		}
		return k.cs.run(dy, n, Buffer{}, 0, Buffer{}, db.Slice32(k.lo, k.hi))
	}
	return nil
}
