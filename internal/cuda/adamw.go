package cuda

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/mambago/mamba/optim"
)

// optBlock is OPT_BLOCK of kernels/adamw.cu: optim's block size, which fixes the order of the
// gradient norm's sums.
const optBlock = 16384

// AdamParam is one trainable tensor on the device: values (float32 master weights) and gradient of
// the same length, and whether weight decay skips it.
type AdamParam struct {
	Name        string
	Value, Grad Buffer
	NoDecay     bool
}

// adamSeg, adamBlock and adamParams mirror AdamSeg, AdamBlock and AdamParams in kernels/adamw.cu.
type adamSeg struct {
	p, g, m, v   uint64
	n            int64
	nodecay, pad int32
}

type adamBlock struct {
	seg, pad int32
	lo       int64
}

type adamParams struct {
	segs, blocks, partial, stats, scale uint64
	nblocks, pad0                       int32
	clip                                float64
	beta1, beta2, c, eps, keep, pad1    float32
}

// AdamW is optim.AdamW on the device: the same blocks, the same float64 gradient norm, and the same
// float32 operations per element, so that equal gradients give bitwise equal parameters and
// moments. The clip scale stays on the device: GradNorm computes it, Step reads it.
type AdamW struct {
	d                  *Device
	cfg                optim.Config
	params             []AdamParam
	m, v               []Buffer
	tables             Buffer // segments, then blocks
	partial            Buffer // float64 per block
	stats              Buffer // float64 [norm]
	scale              Buffer // float32 clip scale
	nblocks            int
	t                  int64
	part, finish, step function
	p                  adamParams
}

// NewAdamW returns an optimizer for params with zero moments (allocated here). Names must be
// unique and each Grad as long as its Value.
func (d *Device) NewAdamW(params []AdamParam, cfg optim.Config) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, errors.New("cuda: AdamW: no parameters")
	}
	o := &AdamW{d: d, cfg: cfg, params: params, part: d.function("gradnorm_part"), finish: d.function("gradnorm_finish"), step: d.function("adamw_step")}
	segs := make([]adamSeg, len(params))
	var blocks []adamBlock
	seen := map[string]bool{}
	for i, p := range params {
		if seen[p.Name] {
			return nil, fmt.Errorf("cuda: AdamW: duplicate parameter name %q", p.Name)
		}
		seen[p.Name] = true
		if p.Value.Nil() || p.Value.bytes%4 != 0 || p.Grad.bytes != p.Value.bytes {
			return nil, fmt.Errorf("cuda: AdamW: parameter %q has %d bytes of values and %d of gradient", p.Name, p.Value.bytes, p.Grad.bytes)
		}
		n := p.Value.Len32()
		for lo := 0; lo < n; lo += optBlock {
			blocks = append(blocks, adamBlock{seg: int32(i), lo: int64(lo)})
		}
		segs[i] = adamSeg{p: p.Value.ptr, g: p.Grad.ptr, n: int64(n), nodecay: b2i(p.NoDecay)}
	}
	if len(blocks) > math.MaxInt32/4 {
		return nil, fmt.Errorf("cuda: AdamW: %d blocks is too many", len(blocks))
	}
	o.nblocks = len(blocks)
	fail := func(err error) (*AdamW, error) {
		o.Close()
		return nil, err
	}
	for i, p := range params {
		m, err := d.Alloc(p.Value.bytes)
		if err != nil {
			return fail(err)
		}
		o.m = append(o.m, m)
		v, err := d.Alloc(p.Value.bytes)
		if err != nil {
			return fail(err)
		}
		o.v = append(o.v, v)
		segs[i].m, segs[i].v = m.ptr, v.ptr
		if err := firstErr(d.Zero(m), d.Zero(v)); err != nil {
			return fail(err)
		}
	}
	segBytes := len(segs) * int(unsafe.Sizeof(adamSeg{}))
	tab := make([]byte, segBytes+len(blocks)*int(unsafe.Sizeof(adamBlock{})))
	copy(tab, unsafe.Slice((*byte)(unsafe.Pointer(&segs[0])), segBytes))
	copy(tab[segBytes:], unsafe.Slice((*byte)(unsafe.Pointer(&blocks[0])), len(tab)-segBytes))
	var err error
	if o.tables, err = d.Alloc(len(tab)); err != nil {
		return fail(err)
	}
	if o.partial, err = d.Alloc(8 * o.nblocks); err != nil {
		return fail(err)
	}
	if o.stats, err = d.Alloc(8); err != nil {
		return fail(err)
	}
	if o.scale, err = d.Alloc(4); err != nil {
		return fail(err)
	}
	if err := firstErr(Upload(d, o.tables, tab), o.SetScale(1)); err != nil {
		return fail(err)
	}
	o.p = adamParams{segs: o.tables.ptr, blocks: o.tables.ptr + uint64(segBytes), partial: o.partial.ptr, stats: o.stats.ptr,
		scale: o.scale.ptr, nblocks: int32(o.nblocks), clip: cfg.GradClip}
	return o, nil
}

// Close frees the moments and tables.
func (o *AdamW) Close() error {
	var first error
	for _, b := range append(append([]Buffer{o.tables, o.partial, o.stats, o.scale}, o.m...), o.v...) {
		first = firstErr(first, o.d.Free(b))
	}
	o.m, o.v = nil, nil
	o.tables, o.partial, o.stats, o.scale = Buffer{}, Buffer{}, Buffer{}, Buffer{}
	return first
}

// Moments returns the device buffers of the first and second moments, in parameter order (for
// checkpoints: Download them, or Upload a restored state).
func (o *AdamW) Moments() (m, v []Buffer) { return o.m, o.v }

// Updates returns how many updates have been taken; SetUpdates restores it with the moments.
func (o *AdamW) Updates() int64 { return o.t }

// SetUpdates sets the update count (t in the bias corrections).
func (o *AdamW) SetUpdates(t int64) error {
	if t < 0 {
		return fmt.Errorf("cuda: AdamW: negative update count %d", t)
	}
	o.t = t
	return nil
}

// GradNorm launches the global gradient norm and the clip scale min(1, clip/(norm + 1e-6)) (1 when
// clipping is off), both left on the device; Norm reads the norm back.
func (o *AdamW) GradNorm() error {
	d := o.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	if err := d.launch(o.part.name, o.part.f, dim3{x: ceilDiv(4*o.nblocks, 128)}, dim3{x: 128}, 0, unsafe.Pointer(&o.p)); err != nil {
		return err
	}
	return d.launch(o.finish.name, o.finish.f, dim3{x: 1}, dim3{x: 32}, 0, unsafe.Pointer(&o.p))
}

// Norm waits for the device and returns the norm of the last GradNorm.
func (o *AdamW) Norm() (float64, error) {
	x := []float64{0}
	err := Download(o.d, x, o.stats)
	return x[0], err
}

// Scale waits for the device and returns the clip scale Step will use.
func (o *AdamW) Scale() (float32, error) {
	x := []float32{0}
	err := Download(o.d, x, o.scale)
	return x[0], err
}

// SetScale sets the factor Step multiplies the gradients by (replacing GradNorm's).
func (o *AdamW) SetScale(s float32) error { return Upload(o.d, o.scale, []float32{s}) }

// Step takes one AdamW update with learning rate lr, with optim.AdamW.Step's constants.
func (o *AdamW) Step(lr float64) error {
	o.t++
	t, cfg := float64(o.t), o.cfg
	bc1 := 1 - math.Pow(cfg.Beta1, t)
	bc2 := 1 - math.Pow(cfg.Beta2, t)
	c1 := float32(lr / bc1)
	c2 := float32(1 / math.Sqrt(bc2))
	eps := float32(cfg.Eps)
	o.p.beta1, o.p.beta2 = float32(cfg.Beta1), float32(cfg.Beta2)
	o.p.c, o.p.eps = c1/c2, eps/c2
	o.p.keep = float32(1 - lr*cfg.WeightDecay)
	d := o.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.launch(o.step.name, o.step.f, dim3{x: o.nblocks, y: optBlock / 256}, dim3{x: 256}, 0, unsafe.Pointer(&o.p))
}
