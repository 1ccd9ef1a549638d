package layers

import (
	"fmt"
	"runtime"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/parallel"
	"github.com/mambago/mamba/scan"
)

// Decoder runs the model as a recurrence: per block a conv state (the last
// K−1 conv inputs of each channel) and an SSM state h (N values per
// channel), so each new token costs the same time and memory whatever its
// position. It computes with the kernels of the training graph (package
// internal/kernel: RMSNorm, the causal conv continued from its state, the
// products, A = −exp(A_log)) and the scan of package scan, so training and
// generation share their numerics.
//
// Prefill pushes a whole chunk of tokens through the training graph's
// kernels, the parallel (chunked) scan included, and hands its final state
// on. Step advances every row by one token: each block in four short phases
// over blocks of channels (or of weight rows) on a persistent team of
// goroutines, as many as each phase's work needs, every output one dot
// product (see stepper) and the scan's one-token step (scan.Stepper) on the
// state in place.
//
// A Decoder reads the model's parameters when it runs and caches
// A = −exp(A_log) and the transposed conv weights at Reset: call Reset after
// changing the parameters. It is not safe for concurrent use. Close stops
// its goroutines (they also stop when the Decoder is garbage collected).
type Decoder struct {
	m     *Model
	batch int
	pos   int
	conv  [][]float32 // per block: (batch·(K−1), E), oldest input first
	next  []float32   // (batch·(K−1), E): the conv's next state, swapped with conv[l]
	ssm   [][]float32 // per block: the SSM state, (batch, E, N)
	spare []float32   // Prefill's next state, swapped with ssm[l]
	a     [][]float32 // per block: (E, N), −exp(A_log)
	step  *stepper
	last  *run // the kernels and buffers of the last Prefill
}

// run holds the kernels and activations of a pass over L tokens per row. The
// kernels are the training graph's, built for this shape; every block uses
// the same ones.
type run struct {
	L                             int
	norm, normF                   kernel.Kernel[[]float32]
	inX, inZ, conv, xProj, dtProj kernel.Kernel[[]float32]
	outProj, head                 kernel.Kernel[[]float32]
	scan                          *scan.Fast
	h, h2, n, x, z, u, dbc        []float32
	delta, dt, bs, cs, y          []float32
	hf, logits                    []float32
	args                          [][]float32
}

func (d *Decoder) newRun(L int) (*run, error) {
	cfg := d.m.cfg
	D, E, N, K, R, V := cfg.DModel, cfg.DInner(), cfg.DState, cfg.DConv, cfg.Rank(), cfg.PaddedVocab()
	rows := d.batch * L
	r := &run{L: L, args: make([][]float32, 0, 8)}
	var err error
	newK := func(s kernel.Spec) kernel.Kernel[[]float32] {
		if err != nil {
			return nil
		}
		var k kernel.Kernel[[]float32]
		k, err = kernel.CPU{}.New(s)
		return k
	}
	r.norm = newK(kernel.RMSNorm{Rows: rows, Dim: D, Eps: cfg.NormEps})
	r.normF = newK(kernel.RMSNorm{Rows: d.batch, Dim: D, Eps: cfg.NormEps})
	r.inX = newK(kernel.Linear{Rows: rows, In: D, Out: 2 * E, Lo: 0, Hi: E, Bias: cfg.Bias})
	r.inZ = newK(kernel.Linear{Rows: rows, In: D, Out: 2 * E, Lo: E, Hi: 2 * E, Bias: cfg.Bias})
	r.conv = newK(kernel.Conv1d{Batch: d.batch, Len: L, Channels: E, Width: K, Bias: cfg.ConvBias, SiLU: true, State: K > 1})
	if cfg.Selective {
		r.xProj = newK(kernel.Linear{Rows: rows, In: E, Out: R + 2*N, Lo: 0, Hi: R + 2*N})
		r.dtProj = newK(kernel.Linear{Rows: rows, In: R, Out: E, Lo: 0, Hi: E})
	}
	r.outProj = newK(kernel.Linear{Rows: rows, In: E, Out: D, Lo: 0, Hi: D, Bias: cfg.Bias, Residual: true})
	r.head = newK(kernel.Linear{Rows: d.batch, In: D, Out: V, Lo: 0, Hi: V})
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if r.scan, err = scan.New(scan.Shape{Batch: d.batch, Len: L, Channels: E, State: N}, scan.Options{Softplus: true}); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	f := func(n int) []float32 { return make([]float32, n) }
	r.h, r.h2, r.n, r.x, r.z, r.u = f(rows*D), f(rows*D), f(rows*D), f(rows*E), f(rows*E), f(rows*E)
	r.dbc, r.delta, r.dt, r.bs, r.cs, r.y = f(rows*(R+2*N)), f(rows*R), f(rows*E), f(rows*N), f(rows*N), f(rows*E)
	r.hf, r.logits = f(d.batch*D), f(d.batch*V)
	return r, nil
}

// NewDecoder returns a decoder for batch independent sequences, at position 0.
func (m *Model) NewDecoder(batch int) (*Decoder, error) {
	if batch < 1 {
		return nil, fmt.Errorf("decoder: batch must be at least 1, got %d", batch)
	}
	if c := m.cfg; tooLarge(batch, c.DInner(), max(c.DState, c.DConv)) || tooLarge(batch, c.PaddedVocab()) {
		return nil, fmt.Errorf("decoder: batch %d is too large (a state exceeds 2^31 elements)", batch)
	}
	cfg := m.cfg
	E, N, K := cfg.DInner(), cfg.DState, cfg.DConv
	d := &Decoder{m: m, batch: batch, spare: make([]float32, batch*E*N), next: make([]float32, batch*(K-1)*E)}
	for range m.blocks {
		d.conv = append(d.conv, make([]float32, batch*(K-1)*E))
		d.ssm = append(d.ssm, make([]float32, batch*E*N))
		d.a = append(d.a, make([]float32, E*N))
	}
	var err error
	if d.step, err = newStepper(d); err != nil {
		return nil, err
	}
	runtime.AddCleanup(d, func(t *parallel.Team) { t.Close() }, d.step.team)
	d.Reset()
	return d, nil
}

// Close stops the goroutines of Step. The Decoder must not be used afterwards.
func (d *Decoder) Close() { d.step.team.Close() }

// Reset returns every row to position 0 (zero states) and re-reads A_log.
func (d *Decoder) Reset() {
	d.pos = 0
	for l, b := range d.m.blocks {
		clear(d.conv[l])
		clear(d.ssm[l])
		kernel.NegExp(d.a[l], b.aLog.Value)
	}
	d.step.reset()
}

// Pos is the number of tokens consumed since the last Reset.
func (d *Decoder) Pos() int { return d.pos }

// Batch is the number of rows.
func (d *Decoder) Batch() int { return d.batch }

// Advance moves every row n positions on without computing them. A Mamba's
// step costs the same at every position, so this only moves Pos; it is there
// for timing steps at a position, as LlamaDecoder.Advance.
func (d *Decoder) Advance(n int) error {
	if n < 0 {
		return fmt.Errorf("decoder: cannot advance %d positions", n)
	}
	d.pos += n
	return nil
}

func (d *Decoder) checkIDs(ids []int32, want int) error {
	return checkTokens(ids, want, d.m.cfg.PaddedVocab())
}

// checkTokens reports a number of ids other than want, or an id outside [0, V).
func checkTokens(ids []int32, want, V int) error {
	if len(ids) != want {
		return fmt.Errorf("decoder: got %d token ids, want %d", len(ids), want)
	}
	for i, t := range ids {
		if t < 0 || int(t) >= V {
			return fmt.Errorf("decoder: token id %d at index %d is outside the vocabulary [0, %d)", t, i, V)
		}
	}
	return nil
}

// Step feeds one token per row (tokens has Batch entries) and returns the
// next-token logits, (Batch, PaddedVocab), valid until the next call.
func (d *Decoder) Step(tokens []int32) ([]float32, error) {
	if err := d.checkIDs(tokens, d.batch); err != nil {
		return nil, err
	}
	logits, err := d.step.step(tokens)
	if err != nil {
		return nil, err
	}
	d.pos++
	return logits, nil
}

// Prefill feeds L tokens per row (tokens is (Batch, L), row-major) through
// the parallel scan, starting from the current state, and returns the logits
// after each row's last token, (Batch, PaddedVocab), valid until the next call.
func (d *Decoder) Prefill(tokens []int32, L int) ([]float32, error) {
	if L < 1 {
		return nil, fmt.Errorf("decoder: prefill length must be at least 1, got %d", L)
	}
	if tooLarge(d.batch, L, max(2*d.m.cfg.DInner(), d.m.cfg.DModel)) {
		return nil, fmt.Errorf("decoder: prefill of %d×%d tokens is too large; split it into chunks", d.batch, L)
	}
	if err := d.checkIDs(tokens, d.batch*L); err != nil {
		return nil, err
	}
	if d.last == nil || d.last.L != L {
		r, err := d.newRun(L)
		if err != nil {
			return nil, err
		}
		d.last = r
	}
	return d.forward(d.last, tokens)
}

// with sets r.args to the given buffers, dropping nil ones (absent optional
// inputs), and returns it.
func (r *run) with(bufs ...[]float32) [][]float32 {
	r.args = r.args[:0]
	for _, b := range bufs {
		if b != nil {
			r.args = append(r.args, b)
		}
	}
	return r.args
}

func value(p *Param) []float32 {
	if p == nil {
		return nil
	}
	return p.Value
}

// forward advances every row by r.L tokens (ids (Batch, L)) and returns the
// logits after the last one.
func (d *Decoder) forward(r *run, ids []int32) ([]float32, error) {
	cfg := d.m.cfg
	D, E, N, K, R := cfg.DModel, cfg.DInner(), cfg.DState, cfg.DConv, cfg.Rank()
	rows, L := d.batch*r.L, r.L
	for i, t := range ids {
		copy(r.h[i*D:(i+1)*D], d.m.emb.Value[int(t)*D:])
	}
	for l := range d.m.blocks {
		b := &d.m.blocks[l]
		r.norm.Forward(r.with(r.h, b.norm.Value), r.n)
		r.inX.Forward(r.with(r.n, b.inW.Value, value(b.inB)), r.x)
		r.inZ.Forward(r.with(r.n, b.inW.Value, value(b.inB)), r.z)
		var state []float32
		if K > 1 {
			state = d.conv[l]
		}
		r.conv.Forward(r.with(r.x, b.convW.Value, value(b.convB), state), r.u)
		if K > 1 {
			kernel.ConvState(d.next, d.conv[l], r.x, d.batch, L, E, K)
			d.conv[l], d.next = d.next, d.conv[l]
		}
		if b.xW != nil {
			r.xProj.Forward(r.with(r.u, b.xW.Value), r.dbc)
			for i := 0; i < rows; i++ {
				row := r.dbc[i*(R+2*N):]
				copy(r.delta[i*R:(i+1)*R], row)
				copy(r.bs[i*N:(i+1)*N], row[R:])
				copy(r.cs[i*N:(i+1)*N], row[R+N:])
			}
			r.dtProj.Forward(r.with(r.delta, b.dtW.Value), r.dt)
		} else { // LTI: δ = 0, so Δ = softplus(dt_proj.bias); B, C constant
			clear(r.dt)
			for i := 0; i < rows; i++ {
				copy(r.bs[i*N:(i+1)*N], b.bLTI.Value)
				copy(r.cs[i*N:(i+1)*N], b.cLTI.Value)
			}
		}
		in := scan.Inputs[float32]{U: r.u, Delta: r.dt, A: d.a[l], B: r.bs, C: r.cs, D: b.d.Value, Z: r.z, DeltaBias: b.dtB.Value, H0: d.ssm[l]}
		if err := r.scan.Forward(in, r.y, d.spare); err != nil {
			return nil, fmt.Errorf("decoder: block %d: %w", l, err)
		}
		d.ssm[l], d.spare = d.spare, d.ssm[l]
		r.outProj.Forward(r.with(r.y, b.outW.Value, value(b.outB), r.h), r.h2)
		r.h, r.h2 = r.h2, r.h
	}
	d.pos += L
	// Logits of each row's last token only.
	for i := 0; i < d.batch; i++ {
		copy(r.hf[i*D:(i+1)*D], r.h[((i+1)*L-1)*D:])
	}
	r.normF.Forward(r.with(r.hf, d.m.normF.Value), r.hf)
	r.head.Forward(r.with(r.hf, d.m.emb.Value), r.logits)
	return r.logits, nil
}
