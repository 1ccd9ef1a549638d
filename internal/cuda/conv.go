package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// convKMax is CONV_KMAX of kernels/conv.cu, the widest kernel; convTile is CONV_TT, the steps a
// thread of the elementwise kernels runs; convSteps is the fewest time steps of one partial sum of
// dw and db (more when that would make over 128 partials).
const (
	convKMax  = 16
	convTile  = 8
	convSteps = 64
)

// convPartSteps returns the time steps of one partial sum of dw and db: at least convSteps, and
// enough that there are about 128 partials, so that their sum is short.
func convPartSteps(c Conv1dConfig) int {
	return max(convSteps, ceilDiv(c.Batch*c.Len, 128))
}

// Conv1dConfig is the shape of a causal depthwise convolution over time: x and y (Batch, Len,
// Channels), w (Channels, Width), an optional bias (Channels), SiLU on the output, and an optional
// reset mask (Batch, Len) bytes after which a step sees no earlier input.
type Conv1dConfig struct {
	Batch, Len, Channels, Width int
	Bias, SiLU, Reset           bool
}

// convParams mirrors ConvParams in kernels/conv.cu.
type convParams struct {
	x, w, bias, dy, reset, y, dc, dx, partw, partb uint64
	batch, len, ch, k, silu, steps                 int32
}

// Conv1d is the causal convolution (kernels/conv.cu). Inputs [x, w, bias if Bias, reset if Reset];
// gradients [dx, dw, dbias if Bias] (any may be nil; the reset has none).
type Conv1d struct {
	d                      *Device
	c                      Conv1dConfig
	dc, partw, partb       Buffer
	fwd, bdc, bdx, bdw, sp function
	p                      convParams
	sum                    colsumParams
}

// NewConv1d returns the convolution of shape c.
func (d *Device) NewConv1d(c Conv1dConfig) (*Conv1d, error) {
	if c.Batch < 1 || c.Len < 1 || c.Channels < 1 || c.Width < 1 || !fits(math.MaxInt32, c.Batch, c.Len, c.Channels) {
		return nil, fmt.Errorf("cuda: Conv1d: shape %+v out of range", c)
	}
	if c.Batch*ceilDiv(c.Len, convPartSteps(c)) > 65535 {
		return nil, fmt.Errorf("cuda: Conv1d: shape %+v has more than 65535 blocks of %d steps", c, convPartSteps(c))
	}
	if c.Width > convKMax {
		return nil, fmt.Errorf("cuda: Conv1d: width %d is above the CUDA kernel's %d", c.Width, convKMax)
	}
	k := &Conv1d{d: d, c: c, fwd: d.function("conv_fwd"), bdc: d.function("conv_bwd_dc"), bdx: d.function("conv_bwd_dx"),
		bdw: d.function("conv_bwd_dw_part"), sp: d.function("sum_parts")}
	blocks := c.Batch * ceilDiv(c.Len, convPartSteps(c))
	var err error
	if k.dc, err = d.Alloc32(c.Batch * c.Len * c.Channels); err == nil {
		if k.partw, err = d.Alloc32(blocks * c.Channels * c.Width); err == nil {
			k.partb, err = d.Alloc32(blocks * c.Channels)
		}
	}
	if err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Close frees the op's device memory.
func (k *Conv1d) Close() error {
	return firstErr(k.d.Free(k.dc), k.d.Free(k.partw), k.d.Free(k.partb))
}

func (k *Conv1d) inputs() int { return 2 + int(b2i(k.c.Bias)) + int(b2i(k.c.Reset)) }

func (k *Conv1d) check(in []Buffer) error {
	c := k.c
	if err := countArgs("Conv1d", "inputs", in, k.inputs()); err != nil {
		return err
	}
	n := c.Batch * c.Len * c.Channels
	err := firstErr(need("Conv1d", "x", in[0], n, 4, false), need("Conv1d", "w", in[1], c.Channels*c.Width, 4, false))
	i := 2
	if c.Bias {
		err = firstErr(err, need("Conv1d", "bias", in[i], c.Channels, 4, false))
		i++
	}
	if c.Reset {
		err = firstErr(err, need("Conv1d", "reset", in[i], c.Batch*c.Len, 1, false))
	}
	return err
}

func (k *Conv1d) params(in []Buffer) {
	c := k.c
	k.p = convParams{x: in[0].ptr, w: in[1].ptr, dc: k.dc.ptr, partw: k.partw.ptr, partb: k.partb.ptr,
		batch: int32(c.Batch), len: int32(c.Len), ch: int32(c.Channels), k: int32(c.Width), silu: b2i(c.SiLU), steps: int32(convPartSteps(c))}
	i := 2
	if c.Bias {
		k.p.bias = in[i].ptr
		i++
	}
	if c.Reset {
		k.p.reset = in[i].ptr
	}
}

// Forward writes y.
func (k *Conv1d) Forward(in []Buffer, y Buffer) error {
	c := k.c
	n := c.Batch * c.Len * c.Channels
	if err := firstErr(k.check(in), need("Conv1d", "y", y, n, 4, false)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.params(in)
	k.p.y = y.ptr
	return d.launch(k.fwd.name, k.fwd.f, d.rows(c.Batch*ceilDiv(c.Len, convTile), c.Channels), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}

// Backward writes din = [dx, dw, dbias if Bias] from dy.
func (k *Conv1d) Backward(in []Buffer, dy Buffer, din []Buffer) error {
	c := k.c
	n := c.Batch * c.Len * c.Channels
	grads := 2 + int(b2i(c.Bias))
	err := firstErr(k.check(in), countArgs("Conv1d", "gradients", din, grads), need("Conv1d", "dy", dy, n, 4, false))
	if err == nil {
		err = firstErr(need("Conv1d", "dx", din[0], n, 4, true), need("Conv1d", "dw", din[1], c.Channels*c.Width, 4, true))
	}
	if err == nil && c.Bias {
		err = need("Conv1d", "dbias", din[2], c.Channels, 4, true)
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
	k.params(in)
	k.p.dy, k.p.dx = dy.ptr, din[0].ptr
	if err := d.launch(k.bdc.name, k.bdc.f, d.rows(c.Batch*ceilDiv(c.Len, convTile), c.Channels), dim3{x: threads}, 0, unsafe.Pointer(&k.p)); err != nil {
		return err
	}
	if !din[0].Nil() {
		if err := d.launch(k.bdx.name, k.bdx.f, d.rows(c.Batch*ceilDiv(c.Len, convTile), c.Channels), dim3{x: threads}, 0, unsafe.Pointer(&k.p)); err != nil {
			return err
		}
	}
	db := arg(din, 2)
	if din[1].Nil() && db.Nil() {
		return nil
	}
	blocks := c.Batch * ceilDiv(c.Len, convPartSteps(c))
	if err := d.launch(k.bdw.name, k.bdw.f, dim3{x: ceilDiv(c.Channels, 128), y: blocks}, dim3{x: 128}, 0, unsafe.Pointer(&k.p)); err != nil {
		return err
	}
	if !din[1].Nil() {
		k.sum = colsumParams{part: k.partw.ptr, out: din[1].ptr, cols: int32(c.Channels * c.Width), parts: int32(blocks)}
		if err := d.launch(k.sp.name, k.sp.f, dim3{x: ceilDiv(c.Channels*c.Width, threads)}, dim3{x: threads}, 0, unsafe.Pointer(&k.sum)); err != nil {
			return err
		}
	}
	if !db.Nil() {
		k.sum = colsumParams{part: k.partb.ptr, out: db.ptr, cols: int32(c.Channels), parts: int32(blocks)}
		return d.launch(k.sp.name, k.sp.f, dim3{x: ceilDiv(c.Channels, threads)}, dim3{x: threads}, 0, unsafe.Pointer(&k.sum))
	}
	return nil
}
