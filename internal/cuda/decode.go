package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// StepConfig is the shape of one token's step through a Mamba block (kernels/decode.cu): Batch
// sequences, Channels = d_inner, the conv Width K, the rank R of Δ's projection and the State size
// N; Selective false is the LTI ablation (Δ = softplus(bias), B and C constants).
type StepConfig struct {
	Batch, Channels, Width, Rank, State int
	Selective                           bool
}

// StepIn are the buffers of a block's step: XZ (Batch, 2·Channels), the in-projection's output
// [x | z]; ConvW (Channels, Width) and ConvB (Channels, or nil); DBC (Batch, Rank+2·State), the
// x-projection's output [δ | B | C] (selective); DtW (Channels, Rank) (selective) and DtB
// (Channels); ALog (Channels, State); D (Channels); B and C (State) (LTI). ConvState
// (Batch, Width−1, Channels) and H (Batch, Channels, State) are updated; U and Y (Batch, Channels)
// are written.
type StepIn struct {
	XZ, ConvW, ConvB, DBC, DtW, DtB, ALog, D, B, C Buffer
	ConvState, U, H, Y                             Buffer
}

// stepParams mirrors StepParams in kernels/decode.cu.
type stepParams struct {
	xz, convw, convb, dbc, dtw, dtb, alog, d, bc, cc uint64
	cstate, u, h, y                                  uint64
	batch, ch, width, rank, nstate, selective        int32
	pad0, pad1                                       int32
}

// BlockStep runs a block's step for one token per sequence: Conv (the causal conv continued from
// its state, then SiLU) before the x-projection, SSM (Δ, the scan's step from its state and the
// gate) after it.
type BlockStep struct {
	d         *Device
	c         StepConfig
	conv, ssm function
	p         stepParams
}

// NewBlockStep returns the step kernels of shape c.
func (d *Device) NewBlockStep(c StepConfig) (*BlockStep, error) {
	if c.Batch < 1 || c.Channels < 1 || c.Width < 1 || c.State < 1 || (c.Selective && c.Rank < 1) ||
		!fits(math.MaxInt32, c.Batch, 2*c.Channels, max(c.State, c.Width)) {
		return nil, fmt.Errorf("cuda: block step %+v out of range", c)
	}
	return &BlockStep{d: d, c: c, conv: d.function("conv_step"), ssm: d.function("ssm_step")}, nil
}

func (k *BlockStep) check(in StepIn) error {
	c := k.c
	B, E, N := c.Batch, c.Channels, c.State
	errs := []error{need("BlockStep", "XZ", in.XZ, B*2*E, 4, false), need("BlockStep", "ConvW", in.ConvW, E*c.Width, 4, false),
		need("BlockStep", "ConvB", in.ConvB, E, 4, true), need("BlockStep", "DtB", in.DtB, E, 4, false),
		need("BlockStep", "ALog", in.ALog, E*N, 4, false), need("BlockStep", "D", in.D, E, 4, false),
		need("BlockStep", "ConvState", in.ConvState, B*max(1, c.Width-1)*E, 4, c.Width == 1),
		need("BlockStep", "U", in.U, B*E, 4, false), need("BlockStep", "H", in.H, B*E*N, 4, false),
		need("BlockStep", "Y", in.Y, B*E, 4, false)}
	if c.Selective {
		errs = append(errs, need("BlockStep", "DBC", in.DBC, B*(c.Rank+2*N), 4, false), need("BlockStep", "DtW", in.DtW, E*c.Rank, 4, false))
	} else {
		errs = append(errs, need("BlockStep", "B", in.B, N, 4, false), need("BlockStep", "C", in.C, N, 4, false))
	}
	return firstErr(errs...)
}

func (k *BlockStep) launch(f function, in StepIn) error {
	if err := k.check(in); err != nil {
		return err
	}
	c, d := k.c, k.d
	k.p = stepParams{xz: in.XZ.ptr, convw: in.ConvW.ptr, convb: in.ConvB.ptr, dbc: in.DBC.ptr, dtw: in.DtW.ptr, dtb: in.DtB.ptr,
		alog: in.ALog.ptr, d: in.D.ptr, bc: in.B.ptr, cc: in.C.ptr, cstate: in.ConvState.ptr, u: in.U.ptr, h: in.H.ptr, y: in.Y.ptr,
		batch: int32(c.Batch), ch: int32(c.Channels), width: int32(c.Width), rank: int32(c.Rank), nstate: int32(c.State),
		selective: b2i(c.Selective)}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	n := c.Batch * c.Channels
	return d.launch(f.name, f.f, dim3{x: ceilDiv(n, 128)}, dim3{x: 128}, 0, unsafe.Pointer(&k.p))
}

// Conv runs the conv step: U from XZ's x half and ConvState, which moves on by one input.
func (k *BlockStep) Conv(in StepIn) error { return k.launch(k.conv, in) }

// SSM runs Δ, the scan's step (H moves on by one token) and the gate with XZ's z half into Y.
func (k *BlockStep) SSM(in StepIn) error { return k.launch(k.ssm, in) }

// Gather writes out[r] = table[ids[r]] for rows ids (int32, in [0, vocab) of a (vocab, dim) table),
// on the stream.
func (d *Device) Gather(out, table, ids Buffer, rows, vocab, dim int) error {
	if err := firstErr(need("Gather", "out", out, rows*dim, 4, false), need("Gather", "table", table, vocab*dim, 4, false),
		need("Gather", "ids", ids, rows, 4, false)); err != nil {
		return err
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	f := d.function("embed_fwd")
	p := embedParams{table: table.ptr, ids: ids.ptr, out: out.ptr, rows: int32(rows), vocab: int32(vocab), dim: int32(dim)}
	return d.launch(f.name, f.f, d.elems(rows*dim), dim3{x: threads}, 0, unsafe.Pointer(&p))
}

// AddBias adds bias (cols) to every row of y (rows, cols), on the stream.
func (d *Device) AddBias(y, bias Buffer, rows, cols int) error {
	if err := firstErr(need("AddBias", "y", y, rows*cols, 4, false), need("AddBias", "bias", bias, cols, 4, false)); err != nil {
		return err
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.launchElt("bias_add", eltParams{y: y.ptr, b: bias.ptr, n: int64(rows * cols), cols: int32(cols)}, rows*cols)
}
