package cuda

import (
	"errors"
	"fmt"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/scan"
)

// Backend builds the device kernels of package kernel's specs: the third implementation of every
// op's math beside kernel.CPU and kernel.Reference (kernel.Backend[Buffer]). Its products run in one
// Precision. The kernels' methods cannot return errors (kernel.Kernel): a failure is kept by the
// Device (Device.Err, Device.Sync). A kernel that reads state set on the host (token ids, targets)
// is Staged: Stage uploads that state, and must run before the kernel (a graph replay included).
// Kernels implement Close, which frees their device memory.
type Backend struct {
	d      *Device
	prec   Precision
	sc     scratch
	resets map[*kernel.Resets]*devResets
}

// Staged is a kernel with an input that lives on the host (the ids of an Embedding, the targets of
// a CrossEntropy): Stage copies its current value to the device.
type Staged interface{ Stage() error }

// NewBackend returns a backend whose products run in precision p.
func (d *Device) NewBackend(p Precision) (*Backend, error) {
	if p < FP32 || p > BF16 {
		return nil, fmt.Errorf("cuda: %v is not a precision", p)
	}
	return &Backend{d: d, prec: p, sc: scratch{d: d}, resets: map[*kernel.Resets]*devResets{}}, nil
}

// Name is "cuda" and the precision, e.g. "cuda/tf32".
func (b *Backend) Name() string { return "cuda/" + b.prec.String() }

// Precision returns the backend's precision.
func (b *Backend) Precision() Precision { return b.prec }

// Device returns the backend's device.
func (b *Backend) Device() *Device { return b.d }

// Close frees the scratch of the BF16 products and the device copies of document starts (after
// every kernel of the backend is done with).
func (b *Backend) Close() error {
	err := b.sc.close()
	for k, r := range b.resets {
		err = firstErr(err, b.d.Free(r.buf))
		delete(b.resets, k)
	}
	return err
}

// devResets is the device copy of a kernel.Resets, shared by the kernels that read it: (Batch·Len)
// bytes, zeros when no document starts in the batch. Stage copies the flags in when they changed.
type devResets struct {
	d    *Device
	held kernel.HeldResets
	buf  Buffer
	last []uint8 // what buf holds, when not zero
	zero bool    // buf holds zeros
}

// devResetsOf returns the device copy of r, made at the first kernel that reads it.
func (b *Backend) devResetsOf(r *kernel.Resets) (*devResets, error) {
	if dr, ok := b.resets[r]; ok {
		return dr, nil
	}
	buf, err := b.d.Alloc(r.Len())
	if err != nil {
		return nil, err
	}
	if err := b.d.Zero(buf); err != nil {
		b.d.Free(buf)
		return nil, err
	}
	dr := &devResets{d: b.d, held: kernel.Hold(r), buf: buf, last: make([]uint8, r.Len()), zero: true}
	b.resets[r] = dr
	return dr, nil
}

func (r *devResets) stage() error {
	r.held.Take()
	f := r.held.Flags()
	switch {
	case f == nil && r.zero:
		return nil
	case f == nil:
		r.zero = true
		return r.d.Zero(r.buf)
	case !r.zero && string(f) == string(r.last):
		return nil
	}
	if err := Upload(r.d, r.buf, f); err != nil {
		return err
	}
	copy(r.last, f)
	r.zero = false
	return nil
}

// New validates s and returns its device kernel.
func (b *Backend) New(s kernel.Spec) (kernel.Kernel[Buffer], error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	d := b.d
	var o deviceOp
	var err error
	switch s := s.(type) {
	case kernel.RMSNorm:
		o, err = d.NewRMSNorm(s.Rows, s.Dim, s.Eps)
	case kernel.Linear:
		o, err = d.newLinear(s, b.prec, &b.sc)
	case kernel.GEMM:
		o, err = d.newGEMM(s, b.prec, &b.sc)
	case kernel.Conv1d:
		if s.State {
			return nil, fmt.Errorf("cuda: %s: a conv continued from a state runs in the decoder's step kernels, not here", s)
		}
		var c *Conv1d
		c, err = d.NewConv1d(Conv1dConfig{Batch: s.Batch, Len: s.Len, Channels: s.Channels, Width: s.Width, Bias: s.Bias, SiLU: s.SiLU,
			Reset: s.Resets != nil})
		if err == nil && s.Resets != nil {
			var r *devResets
			if r, err = b.devResetsOf(s.Resets); err == nil {
				return &staged{adapter{d, &resetConv{c: c, r: r}}, r.stage}, nil
			}
		}
		o = c
	case kernel.Gate:
		o, err = d.NewGate(s.Rows * s.Cols)
	case kernel.Add:
		o, err = d.NewAdd(kernel.Size(s.Shape))
	case kernel.Columns:
		o, err = d.NewColumns(s.Rows, s.Width, s.Lo, s.Hi)
	case kernel.Broadcast:
		o, err = d.newBroadcast(s.Rows, s.Cols)
	case kernel.Embedding:
		var e *Embedding
		if e, err = d.NewEmbedding(s.IDs.Len(), s.Vocab, s.Dim); err == nil {
			return &staged{adapter{d, e}, func() error { return stageIDs(s.IDs, e.SetIDs) }}, nil
		}
	case kernel.CrossEntropy:
		var c *CrossEntropy
		if c, err = d.NewCrossEntropy(s.Targets.Len(), s.Vocab); err == nil {
			return &staged{adapter{d, c}, func() error { return stageIDs(s.Targets, c.SetTargets) }}, nil
		}
	case kernel.Scan:
		var k *Scan
		sh := scan.Shape{Batch: s.Batch, Len: s.Len, Channels: s.Channels, State: s.State}
		if k, err = d.NewScan(sh, ScanOptions{Softplus: s.Softplus, ALog: true}); err == nil {
			so := &scanOp{k: k, s: s}
			if s.Resets == nil {
				o = so
				break
			}
			if so.r, err = b.devResetsOf(s.Resets); err == nil {
				return &staged{adapter{d, so}, so.r.stage}, nil
			}
		}
	default:
		return nil, fmt.Errorf("cuda: the cuda backend has no kernel for %s", s)
	}
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", s, err)
	}
	return adapter{d, o}, nil
}

// deviceOp is a device op with the kernel interface's methods returning errors, and device memory.
type deviceOp interface {
	Forward(in []Buffer, out Buffer) error
	Backward(in []Buffer, dout Buffer, din []Buffer) error
	Close() error
}

// adapter is an op as a kernel.Kernel: errors go to the device.
type adapter struct {
	d  *Device
	op deviceOp
}

func (a adapter) Forward(in []Buffer, out Buffer) { a.d.fail(a.op.Forward(in, out)) }
func (a adapter) Backward(in []Buffer, dout Buffer, din []Buffer) {
	a.d.fail(a.op.Backward(in, dout, din))
}
func (a adapter) Close() error { return a.op.Close() }

// staged is an adapter whose op reads ids set on the host.
type staged struct {
	adapter
	stage func() error
}

func (s *staged) Stage() error { return s.stage() }

// stageIDs hands the ids' current values to set, or says that they were never set.
func stageIDs(ids *kernel.IDs, set func([]int32) error) error {
	if err := ids.Ready(); err != nil {
		return err
	}
	return set(ids.Values())
}

// scanOp is a Scan with the kernel layer's inputs and gradients: [u, delta, A_log, B, C, D if D,
// z if Z, deltaBias if DeltaBias].
type scanOp struct {
	k *Scan
	s kernel.Scan
	r *devResets // the document starts, with s.Resets
}

func (o *scanOp) in(in []Buffer) (ScanIn, error) {
	var x ScanIn
	if len(in) != len(o.s.Inputs()) {
		return x, fmt.Errorf("cuda: Scan: %d buffers, want %d", len(in), len(o.s.Inputs()))
	}
	x.U, x.Delta, x.A, x.B, x.C = in[0], in[1], in[2], in[3], in[4]
	if o.r != nil {
		x.Reset = o.r.buf
	}
	i := 5
	for _, f := range []struct {
		on  bool
		dst *Buffer
	}{{o.s.D, &x.D}, {o.s.Z, &x.Z}, {o.s.DeltaBias, &x.DeltaBias}} {
		if f.on {
			*f.dst, i = in[i], i+1
		}
	}
	return x, nil
}

func (o *scanOp) Forward(in []Buffer, out Buffer) error {
	x, err := o.in(in)
	if err != nil {
		return err
	}
	return o.k.Forward(x, out, Buffer{})
}

func (o *scanOp) Backward(in []Buffer, dout Buffer, din []Buffer) error {
	x, err := o.in(in)
	if err != nil {
		return err
	}
	g, err := o.in(din)
	if err != nil {
		return err
	}
	return o.k.Backward(x, dout, Buffer{}, ScanGrads{U: g.U, Delta: g.Delta, A: g.A, B: g.B, C: g.C, D: g.D, Z: g.Z, DeltaBias: g.DeltaBias})
}

// resetConv is a Conv1d whose last input is the device copy of its document starts.
type resetConv struct {
	c    *Conv1d
	r    *devResets
	args []Buffer
}

func (k *resetConv) with(in []Buffer) []Buffer {
	k.args = append(append(k.args[:0], in...), k.r.buf)
	return k.args
}

func (k *resetConv) Forward(in []Buffer, out Buffer) error { return k.c.Forward(k.with(in), out) }
func (k *resetConv) Backward(in []Buffer, dout Buffer, din []Buffer) error {
	return k.c.Backward(k.with(in), dout, din)
}
func (k *resetConv) Close() error { return k.c.Close() }

func (o *scanOp) Close() error { return o.k.Close() }

// broadcast is kernel.Broadcast: y[r] = v for r < rows; dv = Σ_r g[r] (a column sum).
type broadcast struct {
	d          *Device
	rows, cols int
	add        function
	cs         *colsum
	p          eltParams
}

func (d *Device) newBroadcast(rows, cols int) (*broadcast, error) {
	if rows < 1 || cols < 1 || !fits(sizeLimit, rows, cols) {
		return nil, errors.New("cuda: Broadcast: shape out of range")
	}
	cs, err := d.newColsum(rows, cols)
	if err != nil {
		return nil, err
	}
	return &broadcast{d: d, rows: rows, cols: cols, add: d.function("bias_add"), cs: cs}, nil
}

func (k *broadcast) Forward(in []Buffer, y Buffer) error {
	n := k.rows * k.cols
	if err := firstErr(countArgs("Broadcast", "inputs", in, 1), need("Broadcast", "v", arg(in, 0), k.cols, 4, false),
		need("Broadcast", "y", y, n, 4, false)); err != nil {
		return err
	}
	d := k.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	if err := d.zeroAsync(y); err != nil {
		return err
	}
	k.p = eltParams{y: y.ptr, b: in[0].ptr, n: int64(n), cols: int32(k.cols)}
	return d.launchElt(k.add.name, k.p, n)
}

func (k *broadcast) Backward(_ []Buffer, dy Buffer, din []Buffer) error {
	if err := firstErr(countArgs("Broadcast", "gradients", din, 1), need("Broadcast", "dy", dy, k.rows*k.cols, 4, false),
		need("Broadcast", "dv", arg(din, 0), k.cols, 4, true)); err != nil {
		return err
	}
	if din[0].Nil() {
		return nil
	}
	d := k.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	return k.cs.run(dy, k.cols, Buffer{}, 0, Buffer{}, din[0])
}

func (k *broadcast) Close() error { return k.cs.close() }
