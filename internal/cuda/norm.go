package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// rmsNormParams mirrors RMSNormParams in kernels/norm.cu.
type rmsNormParams struct {
	x, w, dy, y, rstd, dx uint64
	rows, dim             int32
	eps                   float32
	pad                   int32
}

// RMSNorm is y = x/sqrt(mean(x²) + eps)·w over the rows of x (Rows, Dim), w (Dim). Inputs [x, w];
// the gradients [dx, dw]. Forward keeps 1/sqrt(mean(x²) + eps) per row for Backward.
type RMSNorm struct {
	d         *Device
	rows, dim int
	eps       float32
	rstd      Buffer
	cs        *colsum
	fwd, bwd  function
	p         rmsNormParams
}

// rmsRowsPerBlock is the rows of one block of the RMSNorm kernels: one warp each.
const rmsRowsPerBlock = 8

// NewRMSNorm returns the RMSNorm of rows × dim with the given eps.
func (d *Device) NewRMSNorm(rows, dim int, eps float64) (*RMSNorm, error) {
	if rows < 1 || dim < 1 || !fits(math.MaxInt32, rows, dim) {
		return nil, fmt.Errorf("cuda: RMSNorm: rows %d × dim %d out of range", rows, dim)
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("cuda: RMSNorm: eps %g must be positive and finite", eps)
	}
	k := &RMSNorm{d: d, rows: rows, dim: dim, eps: float32(eps), fwd: d.function("rmsnorm_fwd"), bwd: d.function("rmsnorm_bwd_dx")}
	var err error
	if k.rstd, err = d.Alloc32(rows); err != nil {
		return nil, err
	}
	if k.cs, err = d.newColsum(rows, dim); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Close frees the op's device memory.
func (k *RMSNorm) Close() error {
	err := k.d.Free(k.rstd)
	if k.cs != nil {
		err = firstErr(err, k.cs.close())
	}
	return err
}

// Forward writes y (rows, dim) from in = [x, w].
func (k *RMSNorm) Forward(in []Buffer, y Buffer) error {
	if err := countArgs("RMSNorm", "inputs", in, 2); err != nil {
		return err
	}
	n := k.rows * k.dim
	if err := firstErr(need("RMSNorm", "x", in[0], n, 4, false), need("RMSNorm", "w", in[1], k.dim, 4, false),
		need("RMSNorm", "y", y, n, 4, false)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.p = rmsNormParams{x: in[0].ptr, w: in[1].ptr, y: y.ptr, rstd: k.rstd.ptr, rows: int32(k.rows), dim: int32(k.dim), eps: k.eps}
	return d.launch(k.fwd.name, k.fwd.f, dim3{x: ceilDiv(k.rows, rmsRowsPerBlock)}, dim3{x: 32 * rmsRowsPerBlock}, 0, unsafe.Pointer(&k.p))
}

// Backward writes din = [dx, dw] (either may be nil) from in = [x, w] and dy, after Forward.
func (k *RMSNorm) Backward(in []Buffer, dy Buffer, din []Buffer) error {
	if err := firstErr(countArgs("RMSNorm", "inputs", in, 2), countArgs("RMSNorm", "gradients", din, 2)); err != nil {
		return err
	}
	n := k.rows * k.dim
	if err := firstErr(need("RMSNorm", "x", in[0], n, 4, false), need("RMSNorm", "w", in[1], k.dim, 4, false),
		need("RMSNorm", "dy", dy, n, 4, false), need("RMSNorm", "dx", din[0], n, 4, true),
		need("RMSNorm", "dw", din[1], k.dim, 4, true)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.p = rmsNormParams{x: in[0].ptr, w: in[1].ptr, dy: dy.ptr, rstd: k.rstd.ptr, dx: din[0].ptr, rows: int32(k.rows), dim: int32(k.dim), eps: k.eps}
	if !din[0].Nil() {
		if err := d.launch(k.bwd.name, k.bwd.f, dim3{x: ceilDiv(k.rows, rmsRowsPerBlock)}, dim3{x: 32 * rmsRowsPerBlock}, 0, unsafe.Pointer(&k.p)); err != nil {
			return err
		}
	}
	if !din[1].Nil() { // dw_j = Σ_r dy[r,j]·x[r,j]·rstd_r
		return k.cs.run(dy, k.dim, in[0], k.dim, k.rstd, din[1])
	}
	return nil
}
