package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/mambago/mamba/scan"
)

// Scan geometry (kernels/scan.cu): each thread holds scanNS states of one channel; a block holds
// 32 channels and G warps, the power of two with scanNS·G ≥ N; the backward recomputes scanT steps
// at a time in registers.
const (
	scanNS       = 4
	scanT        = 8
	scanTF       = 32
	scanMaxState = 64
)

// ScanOptions choose the scan's variant.
type ScanOptions struct {
	Softplus bool // Δ = softplus(δ + bias) (identity above 20); else Δ = δ + bias
	ALog     bool // the A input holds A_log, A = −exp(A_log), and its gradient is that of A_log
	// Serial loads each tile after the previous tile's recurrence instead of during it (the same
	// results; for measuring what the prefetch gains).
	Serial bool
}

// ScanIn are the inputs of a selective scan, token-major as in package scan: U, Delta, Z
// (Batch, Len, Channels); A (Channels, State); B, C (Batch, Len, State); D, DeltaBias
// (Channels); H0 (Batch, Channels, State); Reset (Batch, Len) bytes, nonzero where a document
// starts (the state entering that step is zero). D, Z, DeltaBias, H0 and Reset may be nil.
type ScanIn struct{ U, Delta, A, B, C, D, Z, DeltaBias, H0, Reset Buffer }

// ScanGrads receives the gradients; each non-nil field is overwritten with d(loss)/d(input), of
// the input's shape (defined, as zeros' gradients, for absent D, DeltaBias and H0; Z only with Z).
type ScanGrads struct{ U, Delta, A, B, C, D, Z, DeltaBias, H0 Buffer }

// scanParams mirrors ScanParams in kernels/scan.cu field for field.
type scanParams struct {
	u, delta, A, B, C, D, z, dbias, h0, reset                      uint64
	out, last, ck                                                  uint64
	dout, dlast                                                    uint64
	du, ddelta, dz, dh0, dApart, dDpart, dbpart, dBpart, dCpart    uint64
	batch, len, ch, nstate, seg, nseg, softplus, alog, groups, sub int32
	prefetch, pad                                                  int32
}

// scanReduceParams mirrors ScanReduceParams in kernels/scan.cu.
type scanReduceParams struct {
	dBpart, dCpart, dApart, dDpart, dbpart, A uint64
	dB, dC, dA, dD, dbias                     uint64
	rows                                      int64
	parts, batch, ch, nstate, alog, pad       int32
}

// scanGeom is the launch geometry of a shape.
type scanGeom struct {
	groups, sub, seg, nseg, blocks int
	smemFwd, smemBwd               int // bytes
}

// scanGeometry computes the geometry; the shared-memory sizes repeat scan_fwd_smem_floats and
// scan_bwd_smem_floats of kernels/scan.cu. The backward keeps the state of sub sub-chunks of one
// segment in shared memory (at most 32 KiB); the forward saves one state per segment of seg steps.
func scanGeometry(s scan.Shape) (scanGeom, error) {
	if s.Batch < 1 || s.Len < 1 || s.Channels < 1 || s.State < 1 {
		return scanGeom{}, fmt.Errorf("cuda: scan shape %+v: every size must be at least 1", s)
	}
	if s.State > scanMaxState {
		return scanGeom{}, fmt.Errorf("cuda: scan shape %+v: State %d is above the CUDA kernel's %d", s, s.State, scanMaxState)
	}
	if s.Batch > 65535 || !fits(math.MaxInt32, s.Batch, s.Len+scanTF, s.Channels+32, s.State) ||
		!fits(sizeLimit, ceilDiv(s.Channels, 32), s.Batch, s.Len, s.State) {
		return scanGeom{}, fmt.Errorf("cuda: scan shape %+v is too large", s)
	}
	g := scanGeom{groups: 1, blocks: ceilDiv(s.Channels, 32)}
	for g.groups*scanNS < s.State {
		g.groups *= 2
	}
	np := g.groups * scanNS
	g.sub = 16 // at least scanTF/scanT = 4, so that segments are whole forward tiles
	for g.sub > scanTF/scanT && g.sub*np*32*4 > 32<<10 {
		g.sub /= 2
	}
	g.seg = scanT * g.sub
	g.nseg = ceilDiv(s.Len, g.seg)
	g.smemFwd = 4 * (4*scanTF*32 + 2*scanTF*np + scanTF + g.groups*scanTF*32)
	g.smemBwd = 4 * (8*scanT*32 + 4*scanT*np + scanT + 3*g.groups*scanT*32 + g.sub*np*32 + g.groups*64)
	return g, nil
}

// Scan is the selective scan on the device (kernels/scan.cu), for one shape. Forward keeps the state
// entering every segment of the sequence for Backward (SavedBytes); Backward must follow a Forward
// on the same inputs. Not safe for concurrent use.
type Scan struct {
	d                               *Device
	s                               scan.Shape
	o                               ScanOptions
	g                               scanGeom
	ck, dApart, dDpart, dbpart      Buffer
	dBpart, dCpart                  Buffer
	fwd, bwd, reduceBC, reduceParam function
	p                               scanParams
	r                               scanReduceParams
}

// NewScan returns the scan for shape s, State at most 64, with its saved states and partial sums
// allocated.
func (d *Device) NewScan(s scan.Shape, o ScanOptions) (*Scan, error) {
	g, err := scanGeometry(s)
	if err != nil {
		return nil, err
	}
	k := &Scan{d: d, s: s, o: o, g: g, fwd: d.function(fmt.Sprintf("scan_fwd_g%d", g.groups)), bwd: d.function(fmt.Sprintf("scan_bwd_g%d", g.groups)),
		reduceBC: d.function("scan_reduce_bc"), reduceParam: d.function("scan_reduce_params")}
	bdn := s.Batch * s.Channels * s.State
	sizes := []struct {
		dst *Buffer
		n   int
	}{
		{&k.ck, s.Batch * g.nseg * s.Channels * s.State}, {&k.dApart, bdn}, {&k.dDpart, s.Batch * s.Channels},
		{&k.dbpart, s.Batch * s.Channels}, {&k.dBpart, g.blocks * s.Batch * s.Len * s.State},
		{&k.dCpart, g.blocks * s.Batch * s.Len * s.State},
	}
	for _, z := range sizes {
		if *z.dst, err = d.Alloc32(z.n); err != nil {
			k.Close()
			return nil, err
		}
	}
	err = d.enter()
	defer d.exit()
	if err == nil {
		err = d.allowShared(k.fwd.name, k.fwd.f, g.smemFwd)
	}
	if err == nil {
		err = d.allowShared(k.bwd.name, k.bwd.f, g.smemBwd)
	}
	if err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Close frees the scan's device memory.
func (k *Scan) Close() error {
	var first error
	for _, b := range []*Buffer{&k.ck, &k.dApart, &k.dDpart, &k.dbpart, &k.dBpart, &k.dCpart} {
		if err := k.d.Free(*b); err != nil && first == nil {
			first = err
		}
		*b = Buffer{}
	}
	return first
}

// Shape returns the scan's shape.
func (k *Scan) Shape() scan.Shape { return k.s }

// SavedBytes is the device memory Forward keeps for Backward: the state entering each segment.
func (k *Scan) SavedBytes() int { return k.ck.bytes }

func (k *Scan) checkIn(in ScanIn) error {
	s := k.s
	tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Batch*s.Channels*s.State
	for _, c := range []struct {
		name     string
		b        Buffer
		n, es    int
		optional bool
	}{
		{"U", in.U, tok, 4, false}, {"Delta", in.Delta, tok, 4, false}, {"A", in.A, s.Channels * s.State, 4, false},
		{"B", in.B, rows, 4, false}, {"C", in.C, rows, 4, false}, {"D", in.D, s.Channels, 4, true},
		{"Z", in.Z, tok, 4, true}, {"DeltaBias", in.DeltaBias, s.Channels, 4, true}, {"H0", in.H0, st, 4, true},
		{"Reset", in.Reset, s.Batch * s.Len, 1, true},
	} {
		if err := need("Scan", "ScanIn."+c.name, c.b, c.n, c.es, c.optional); err != nil {
			return err
		}
	}
	return nil
}

// params fills the parameters shared by both directions.
func (k *Scan) params(in ScanIn) {
	s, g := k.s, k.g
	k.p = scanParams{u: in.U.ptr, delta: in.Delta.ptr, A: in.A.ptr, B: in.B.ptr, C: in.C.ptr, D: in.D.ptr, z: in.Z.ptr,
		dbias: in.DeltaBias.ptr, h0: in.H0.ptr, reset: in.Reset.ptr, ck: k.ck.ptr,
		batch: int32(s.Batch), len: int32(s.Len), ch: int32(s.Channels), nstate: int32(s.State),
		seg: int32(g.seg), nseg: int32(g.nseg), softplus: b2i(k.o.Softplus), alog: b2i(k.o.ALog),
		groups: int32(g.groups), sub: int32(g.sub), prefetch: b2i(!k.o.Serial)}
}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Forward writes out (Batch, Len, Channels) and, if last is not nil, the final state (Batch,
// Channels, State), and saves the segment states for Backward.
func (k *Scan) Forward(in ScanIn, out, last Buffer) error {
	s := k.s
	if err := k.checkIn(in); err != nil {
		return err
	}
	if err := need("Scan", "out", out, s.Batch*s.Len*s.Channels, 4, false); err != nil {
		return err
	}
	if err := need("Scan", "last", last, s.Batch*s.Channels*s.State, 4, true); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.params(in)
	k.p.out, k.p.last = out.ptr, last.ptr
	return d.launch(k.fwd.name, k.fwd.f, dim3{x: k.g.blocks, y: s.Batch}, dim3{x: 32 * k.g.groups}, k.g.smemFwd, unsafe.Pointer(&k.p))
}

// Backward writes the gradients of g given dout = d(loss)/d(out) and dlast = d(loss)/d(last) (may
// be nil). It follows a Forward on the same inputs.
func (k *Scan) Backward(in ScanIn, dout, dlast Buffer, g ScanGrads) error {
	s := k.s
	if err := k.checkIn(in); err != nil {
		return err
	}
	if !g.Z.Nil() && in.Z.Nil() {
		return fmt.Errorf("cuda: Scan: ScanGrads.Z is set but ScanIn.Z is nil (no gate, no gradient)")
	}
	tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Batch*s.Channels*s.State
	for _, c := range []struct {
		name     string
		b        Buffer
		n        int
		optional bool
	}{
		{"dout", dout, tok, false}, {"dlast", dlast, st, true}, {"ScanGrads.U", g.U, tok, true},
		{"ScanGrads.Delta", g.Delta, tok, true}, {"ScanGrads.A", g.A, s.Channels * s.State, true},
		{"ScanGrads.B", g.B, rows, true}, {"ScanGrads.C", g.C, rows, true}, {"ScanGrads.D", g.D, s.Channels, true},
		{"ScanGrads.Z", g.Z, tok, true}, {"ScanGrads.DeltaBias", g.DeltaBias, s.Channels, true}, {"ScanGrads.H0", g.H0, st, true},
	} {
		if err := need("Scan", c.name, c.b, c.n, 4, c.optional); err != nil {
			return err
		}
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.params(in)
	p := &k.p
	p.dout, p.dlast = dout.ptr, dlast.ptr
	p.du, p.ddelta, p.dz, p.dh0 = g.U.ptr, g.Delta.ptr, g.Z.ptr, g.H0.ptr
	p.dApart, p.dDpart, p.dbpart, p.dBpart, p.dCpart = k.dApart.ptr, k.dDpart.ptr, k.dbpart.ptr, k.dBpart.ptr, k.dCpart.ptr
	if err := d.launch(k.bwd.name, k.bwd.f, dim3{x: k.g.blocks, y: s.Batch}, dim3{x: 32 * k.g.groups}, k.g.smemBwd, unsafe.Pointer(p)); err != nil {
		return err
	}
	k.r = scanReduceParams{dBpart: k.dBpart.ptr, dCpart: k.dCpart.ptr, dApart: k.dApart.ptr, dDpart: k.dDpart.ptr,
		dbpart: k.dbpart.ptr, A: in.A.ptr, dB: g.B.ptr, dC: g.C.ptr, dA: g.A.ptr, dD: g.D.ptr, dbias: g.DeltaBias.ptr,
		rows: int64(rows), parts: int32(k.g.blocks), batch: int32(s.Batch), ch: int32(s.Channels), nstate: int32(s.State),
		alog: b2i(k.o.ALog)}
	if !g.B.Nil() || !g.C.Nil() {
		if err := d.launch(k.reduceBC.name, k.reduceBC.f, dim3{x: ceilDiv(rows, threads)}, dim3{x: threads}, 0, unsafe.Pointer(&k.r)); err != nil {
			return err
		}
	}
	if !g.A.Nil() || !g.D.Nil() || !g.DeltaBias.Nil() {
		return d.launch(k.reduceParam.name, k.reduceParam.f, dim3{x: ceilDiv(s.Channels*s.State, threads)}, dim3{x: threads}, 0, unsafe.Pointer(&k.r))
	}
	return nil
}
