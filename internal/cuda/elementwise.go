package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// eltParams mirrors EltParams in kernels/elementwise.cu.
type eltParams struct {
	a, b, g, y, da, db, hsrc, hdst uint64
	n                              int64
	rows, cols, ld, lo             int32
	s                              float32
	pad                            int32
}

// Add is the residual connection y = a + b of N elements. Inputs [a, b]; gradients [da, db], both
// the upstream gradient (copied).
type Add struct {
	d   *Device
	n   int
	fwd function
	p   eltParams
}

// NewAdd returns the sum of two vectors of n elements.
func (d *Device) NewAdd(n int) (*Add, error) {
	if n < 1 || n > sizeLimit {
		return nil, fmt.Errorf("cuda: Add of %d elements", n)
	}
	return &Add{d: d, n: n, fwd: d.function("add_fwd")}, nil
}

// Close frees nothing: the op has no device memory of its own.
func (k *Add) Close() error { return nil }

// Forward writes y = in[0] + in[1].
func (k *Add) Forward(in []Buffer, y Buffer) error {
	return binary(k.d, "Add", [2]string{"a", "b"}, k.fwd, &k.p, k.n, in, y)
}

// Backward copies dy into each non-nil gradient of din = [da, db].
func (k *Add) Backward(_ []Buffer, dy Buffer, din []Buffer) error {
	if err := firstErr(countArgs("Add", "gradients", din, 2), need("Add", "dy", dy, k.n, 4, false),
		need("Add", "da", din[0], k.n, 4, true), need("Add", "db", din[1], k.n, 4, true)); err != nil {
		return err
	}
	for _, g := range din {
		if !g.Nil() {
			if err := k.d.Copy(g, dy); err != nil {
				return err
			}
		}
	}
	return nil
}

// binary checks and launches the forward of a two-input elementwise op of n elements: fn reads
// p.a and p.b and writes p.y (p is the op's own, so that a launch allocates nothing).
func binary(d *Device, op string, names [2]string, fn function, p *eltParams, n int, in []Buffer, y Buffer) error {
	if err := countArgs(op, "inputs", in, 2); err != nil {
		return err
	}
	if err := firstErr(need(op, names[0], in[0], n, 4, false), need(op, names[1], in[1], n, 4, false), need(op, "y", y, n, 4, false)); err != nil {
		return err
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	*p = eltParams{a: in[0].ptr, b: in[1].ptr, y: y.ptr, n: int64(n)}
	return d.launch(fn.name, fn.f, d.elems(n), dim3{x: threads}, 0, unsafe.Pointer(p))
}

// Gate is the SiLU gate y = x·silu(z) of N elements. Inputs [x, z]; gradients [dx, dz].
type Gate struct {
	d        *Device
	n        int
	fwd, bwd function
	p        eltParams
}

// NewGate returns the gate over n elements.
func (d *Device) NewGate(n int) (*Gate, error) {
	if n < 1 || n > sizeLimit {
		return nil, fmt.Errorf("cuda: Gate of %d elements", n)
	}
	return &Gate{d: d, n: n, fwd: d.function("gate_fwd"), bwd: d.function("gate_bwd")}, nil
}

// Close frees nothing: the op has no device memory of its own.
func (k *Gate) Close() error { return nil }

// Forward writes y = x·silu(z).
func (k *Gate) Forward(in []Buffer, y Buffer) error {
	return binary(k.d, "Gate", [2]string{"x", "z"}, k.fwd, &k.p, k.n, in, y)
}

// Backward writes din = [dx, dz] (either may be nil).
func (k *Gate) Backward(in []Buffer, dy Buffer, din []Buffer) error {
	if err := firstErr(countArgs("Gate", "inputs", in, 2), countArgs("Gate", "gradients", din, 2)); err != nil {
		return err
	}
	if err := firstErr(need("Gate", "x", in[0], k.n, 4, false), need("Gate", "z", in[1], k.n, 4, false), need("Gate", "dy", dy, k.n, 4, false),
		need("Gate", "dx", din[0], k.n, 4, true), need("Gate", "dz", din[1], k.n, 4, true)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.p = eltParams{a: in[0].ptr, b: in[1].ptr, g: dy.ptr, da: din[0].ptr, db: din[1].ptr, n: int64(k.n)}
	return d.launch(k.bwd.name, k.bwd.f, d.elems(k.n), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}

// Columns is y = x[:, Lo:Hi] for x (Rows, Width): one product split into its parts. Input [x];
// gradient [dx], g in columns Lo..Hi and zero elsewhere.
type Columns struct {
	d               *Device
	rows, w, lo, hi int
	fwd, bwd        function
	p               eltParams
}

// NewColumns returns the column split of rows × width to columns [lo, hi).
func (d *Device) NewColumns(rows, width, lo, hi int) (*Columns, error) {
	if rows < 1 || width < 1 || lo < 0 || hi > width || lo >= hi || !fits(math.MaxInt32, rows, width) {
		return nil, fmt.Errorf("cuda: Columns: columns [%d, %d) of %d × %d", lo, hi, rows, width)
	}
	return &Columns{d: d, rows: rows, w: width, lo: lo, hi: hi, fwd: d.function("columns_fwd"), bwd: d.function("columns_bwd")}, nil
}

// Close frees nothing: the op has no device memory of its own.
func (k *Columns) Close() error { return nil }

// Forward writes y (rows, hi−lo).
func (k *Columns) Forward(in []Buffer, y Buffer) error {
	if err := countArgs("Columns", "inputs", in, 1); err != nil {
		return err
	}
	n := k.rows * (k.hi - k.lo)
	if err := firstErr(need("Columns", "x", in[0], k.rows*k.w, 4, false), need("Columns", "y", y, n, 4, false)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.p = eltParams{a: in[0].ptr, y: y.ptr, n: int64(n), rows: int32(k.rows), cols: int32(k.hi - k.lo), ld: int32(k.w), lo: int32(k.lo)}
	return d.launch(k.fwd.name, k.fwd.f, d.elems(n), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}

// Backward writes din = [dx] (rows, width).
func (k *Columns) Backward(_ []Buffer, dy Buffer, din []Buffer) error {
	if err := countArgs("Columns", "gradients", din, 1); err != nil {
		return err
	}
	n := k.rows * k.w
	if err := firstErr(need("Columns", "dy", dy, k.rows*(k.hi-k.lo), 4, false), need("Columns", "dx", din[0], n, 4, true)); err != nil {
		return err
	}
	if din[0].Nil() {
		return nil
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.p = eltParams{g: dy.ptr, da: din[0].ptr, n: int64(n), rows: int32(k.rows), cols: int32(k.hi - k.lo), ld: int32(k.w), lo: int32(k.lo)}
	return d.launch(k.bwd.name, k.bwd.f, d.elems(n), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}

// AddTo adds src to dst elementwise (float32 buffers of one size), on the stream.
func (d *Device) AddTo(dst, src Buffer) error {
	return d.elementwise("add_fwd", eltParams{a: dst.ptr, b: src.ptr, y: dst.ptr}, dst, src)
}

// Scale writes dst = s·src (float32 buffers of one size; dst may be src), on the stream.
func (d *Device) Scale(dst, src Buffer, s float32) error {
	return d.elementwise("scale_f32", eltParams{a: src.ptr, y: dst.ptr, s: s}, dst, src)
}

// elementwise launches kernel name over the float32 elements of dst, src of the same size.
func (d *Device) elementwise(name string, p eltParams, dst, src Buffer) error {
	if dst.Nil() || dst.bytes != src.bytes || dst.bytes%4 != 0 {
		return fmt.Errorf("cuda: %s of buffers of %d and %d bytes", name, dst.bytes, src.bytes)
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	p.n = int64(dst.bytes / 4)
	return d.launchElt(name, p, dst.bytes/4)
}

// ToBF16 writes n bfloat16 values (round to nearest even) of the float32 src into dst.
func (d *Device) ToBF16(dst, src Buffer, n int) error {
	return d.convert("f32_to_bf16", eltParams{a: src.ptr, hdst: dst.ptr, n: int64(n)}, dst, bf16Bytes, src, float32Bytes, n)
}

// FromBF16 writes n float32 values of the bfloat16 src into dst.
func (d *Device) FromBF16(dst, src Buffer, n int) error {
	return d.convert("bf16_to_f32", eltParams{hsrc: src.ptr, y: dst.ptr, n: int64(n)}, dst, float32Bytes, src, bf16Bytes, n)
}

func (d *Device) convert(name string, p eltParams, dst Buffer, de int, src Buffer, se int, n int) error {
	if n < 1 || n > sizeLimit || dst.Nil() || src.Nil() || dst.bytes < n*de || src.bytes < n*se {
		return fmt.Errorf("cuda: %s of %d values: buffers of %d and %d bytes", name, n, src.bytes, dst.bytes)
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.launchElt(name, p, n)
}

// toBF16 is ToBF16 for a caller that has entered, with buffers known to fit.
func (d *Device) toBF16(dst, src Buffer, n int) error {
	return d.launchElt("f32_to_bf16", eltParams{a: src.ptr, hdst: dst.ptr, n: int64(n)}, n)
}

// launchElt launches the one-thread-per-element kernel name over n elements with parameters p
// (the caller has entered).
func (d *Device) launchElt(name string, p eltParams, n int) error {
	k := d.function(name)
	d.scratch = p
	return d.launch(k.name, k.f, d.elems(n), dim3{x: threads}, 0, unsafe.Pointer(&d.scratch))
}
