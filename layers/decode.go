package layers

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gorgonia.org/gorgonia"

	"github.com/mambago/mamba/scan"
)

// Decoder runs the model as a recurrence: per block a conv state (the last
// K conv inputs of each channel) and an SSM state h (N values per channel),
// so each new token costs the same time and memory whatever its position.
// Prefill pushes a whole chunk of tokens through the parallel scan and hands
// its final state on; Step advances every row by one token, a scan of
// length 1 started from that state.
//
// A Decoder reads the model's parameters when it runs and caches
// A = −exp(A_log) at Reset: call Reset after changing the parameters. It is
// not safe for concurrent use.
type Decoder struct {
	m     *Model
	batch int
	pos   int
	conv  [][]float32 // per block: (batch, E, K), oldest input first
	ssm   [][]float32 // per block: (batch, E, N)
	spare []float32   // (batch, E, N): the scan's next state, swapped with ssm[l]
	a     [][]float32 // per block: (E, N), −exp(A_log)
	one   *run        // Step's buffers: one token per row
}

// run holds the activations and scan buffers of a pass over rows tokens.
type run struct {
	kern                                  *scan.Fast
	h, n, xz, xc, dbl, dt, y, out, logits []float32
	z, bs, cs                             []float32 // contiguous scan inputs: (rows, E), (rows, N), (rows, N)
}

func (d *Decoder) newRun(L int) (*run, error) {
	cfg := d.m.cfg
	D, E, N, R, V := cfg.DModel, cfg.DInner(), cfg.DState, cfg.Rank(), cfg.PaddedVocab()
	kern, err := scan.New(scan.Shape{Batch: d.batch, Len: L, Channels: E, State: N}, scan.Options{Softplus: true})
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	rows := d.batch * L
	f := func(n int) []float32 { return make([]float32, n) }
	return &run{
		kern: kern, h: f(rows * D), n: f(rows * D), xz: f(rows * 2 * E), xc: f(rows * E), dbl: f(rows * (R + 2*N)),
		dt: f(rows * E), y: f(rows * E), out: f(rows * D), logits: f(d.batch * V),
		z: f(rows * E), bs: f(rows * N), cs: f(rows * N),
	}, nil
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
	d := &Decoder{m: m, batch: batch, spare: make([]float32, batch*E*N)}
	for range m.blocks {
		d.conv = append(d.conv, make([]float32, batch*E*K))
		d.ssm = append(d.ssm, make([]float32, batch*E*N))
		d.a = append(d.a, make([]float32, E*N))
	}
	var err error
	if d.one, err = d.newRun(1); err != nil {
		return nil, err
	}
	d.Reset()
	return d, nil
}

// Reset returns every row to position 0 (zero states) and re-reads A_log.
func (d *Decoder) Reset() {
	d.pos = 0
	for l, b := range d.m.blocks {
		clear(d.conv[l])
		clear(d.ssm[l])
		for k, v := range b.aLog.Value {
			d.a[l][k] = float32(-math.Exp(float64(v)))
		}
	}
}

// Pos is the number of tokens consumed since the last Reset.
func (d *Decoder) Pos() int { return d.pos }

// Batch is the number of rows.
func (d *Decoder) Batch() int { return d.batch }

func (d *Decoder) checkIDs(ids []int32, want int) error {
	if len(ids) != want {
		return fmt.Errorf("decoder: got %d token ids, want %d", len(ids), want)
	}
	V := d.m.cfg.PaddedVocab()
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
	return d.forward(d.one, tokens, 1)
}

// Prefill feeds L tokens per row (tokens is (Batch, L), row-major) through
// the parallel scan, starting from the current state, and returns the logits
// after each row's last token, (Batch, PaddedVocab), valid until the next call.
func (d *Decoder) Prefill(tokens []int32, L int) ([]float32, error) {
	if L < 1 {
		return nil, fmt.Errorf("decoder: prefill length must be at least 1, got %d", L)
	}
	if tooLarge(d.batch, L, 2*d.m.cfg.DInner()) {
		return nil, fmt.Errorf("decoder: prefill of %d×%d tokens is too large; split it into chunks", d.batch, L)
	}
	if err := d.checkIDs(tokens, d.batch*L); err != nil {
		return nil, err
	}
	r := d.one
	if L > 1 {
		var err error
		if r, err = d.newRun(L); err != nil {
			return nil, err
		}
	}
	return d.forward(r, tokens, L)
}

// forward advances every row by L tokens (ids (Batch, L)) and returns the
// logits after the last one.
func (d *Decoder) forward(r *run, ids []int32, L int) ([]float32, error) {
	cfg := d.m.cfg
	D, E, N, R := cfg.DModel, cfg.DInner(), cfg.DState, cfg.Rank()
	rows := d.batch * L
	d.embed(r.h, ids)
	for l := range d.m.blocks {
		b := &d.m.blocks[l]
		rmsNorm(r.n, r.h, b.norm.Value, rows, D, cfg.NormEps)
		mulT(r.xz, 2*E, r.n, D, b.inW.Value, rows, D, 2*E)
		addBias(r.xz, b.inB, rows)
		d.conv1d(b, d.conv[l], r.xz, r.xc, L)
		if b.xW != nil {
			mulT(r.dbl, R+2*N, r.xc, E, b.xW.Value, rows, E, R+2*N)
			mulT(r.dt, E, r.dbl, R+2*N, b.dtW.Value, rows, R, E)
		}
		for i := 0; i < rows; i++ {
			copy(r.z[i*E:(i+1)*E], r.xz[i*2*E+E:(i+1)*2*E])
			if b.xW != nil {
				copy(r.bs[i*N:(i+1)*N], r.dbl[i*(R+2*N)+R:])
				copy(r.cs[i*N:(i+1)*N], r.dbl[i*(R+2*N)+R+N:])
			} else { // LTI: δ = 0, so Δ = softplus(dt_proj.bias); B, C constant
				copy(r.bs[i*N:(i+1)*N], b.bLTI.Value)
				copy(r.cs[i*N:(i+1)*N], b.cLTI.Value)
			}
		}
		in := scan.Inputs[float32]{U: r.xc, Delta: r.dt, A: d.a[l], B: r.bs, C: r.cs, D: b.d.Value, Z: r.z, DeltaBias: b.dtB.Value, H0: d.ssm[l]}
		if err := r.kern.Forward(in, r.y, d.spare); err != nil {
			return nil, fmt.Errorf("decoder: block %d: %w", l, err)
		}
		d.ssm[l], d.spare = d.spare, d.ssm[l]
		mulT(r.out, D, r.y, E, b.outW.Value, rows, E, D)
		addBias(r.out, b.outB, rows)
		for i := range r.h[:rows*D] {
			r.h[i] += r.out[i]
		}
	}
	d.pos += L
	// Logits of each row's last token only.
	V := cfg.PaddedVocab()
	for i := 0; i < d.batch; i++ {
		rmsNorm(r.n[i*D:(i+1)*D], r.h[((i+1)*L-1)*D:], d.m.normF.Value, 1, D, cfg.NormEps)
	}
	mulT(r.logits, V, r.n, D, d.m.emb.Value, d.batch, D, V)
	return r.logits, nil
}

// conv1d is the causal depthwise convolution with SiLU of L new inputs per
// row (the x half of xz), continuing from the conv state, which then keeps
// the last K inputs.
func (d *Decoder) conv1d(b *mixer, state, xz, xc []float32, L int) {
	E, K := d.m.cfg.DInner(), d.m.cfg.DConv
	for r := 0; r < d.batch; r++ {
		for e := 0; e < E; e++ {
			st := state[(r*E+e)*K : (r*E+e+1)*K]
			w := b.convW.Value[e*K : (e+1)*K]
			input := func(t int) float32 { // t < 0 reads the state
				if t < 0 {
					return st[K+t]
				}
				return xz[(r*L+t)*2*E+e]
			}
			for t := 0; t < L; t++ {
				var s float32
				if b.convB != nil {
					s = b.convB.Value[e]
				}
				for k := 0; k < K; k++ {
					s += w[k] * input(t-(K-1)+k)
				}
				xc[(r*L+t)*E+e] = silu(s)
			}
			// New state: the last K inputs, oldest first (in place: each
			// entry moves left or comes from xz).
			for k := 0; k < K; k++ {
				st[k] = input(L - K + k)
			}
		}
	}
}

// mulT computes out (rows, nOut; row stride ldo) = x (rows, nIn; row
// stride ldx) · wᵀ with w (nOut, nIn) row-major, through gorgonia's current
// BLAS (OpenBLAS after autograd.UseBLAS).
func mulT(out []float32, ldo int, x []float32, ldx int, w []float32, rows, nIn, nOut int) {
	gorgonia.WhichBLAS().Sgemm(blas.NoTrans, blas.Trans, rows, nOut, nIn, 1, x, ldx, w, nIn, 0, out, ldo)
}

func (d *Decoder) embed(h []float32, ids []int32) {
	D := d.m.cfg.DModel
	for i, t := range ids {
		copy(h[i*D:(i+1)*D], d.m.emb.Value[int(t)*D:])
	}
}

func addBias(x []float32, bias *Param, rows int) {
	if bias == nil {
		return
	}
	n := len(bias.Value)
	for r := 0; r < rows; r++ {
		row := x[r*n : (r+1)*n]
		for i, v := range bias.Value {
			row[i] += v
		}
	}
}

// rmsNorm writes out = x / √(mean(x²) + ε) ⊙ w row by row (sum in float64).
func rmsNorm(out, x, w []float32, rows, d int, eps float64) {
	for r := 0; r < rows; r++ {
		row := x[r*d : (r+1)*d]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		s := float32(1 / math.Sqrt(ss/float64(d)+eps))
		o := out[r*d : (r+1)*d]
		for i, v := range row {
			o[i] = v * s * w[i]
		}
	}
}

func silu(x float32) float32 { return x / (1 + float32(math.Exp(float64(-x)))) }
