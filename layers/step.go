package layers

import (
	"fmt"
	"runtime"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/parallel"
	"github.com/mambago/mamba/scan"
)

// stepper is the decoder's one-token step: every row advances by one token
// through every block in four phases, run by a persistent team of
// goroutines (parallel.Team):
//
//	A  per block of channels: x, z = RMSNorm(h)·in_projᵀ (+ b), the conv step (ConvStep) → u
//	X  per block of x_proj rows: [δ | B | C] = u·x_projᵀ
//	B  per block of channels: dt = δ·dt_projᵀ, the scan step (scan.Stepper) with the gate → y
//	C  per block of out_proj rows: h += y·out_projᵀ (+ b)
//
// and, after the last block, logits = RMSNorm(h)·Embᵀ per block of vocabulary
// rows. The products are kernel.DotRows over a block of weight rows and every
// row of the batch (one pass over the weights, register tiles of 4 rows × 2
// outputs), and every output is summed in DotRows's one order, so no phase has
// partial sums to reduce and the results depend neither on the blocks, nor on
// the team's size, nor on the batch. The RMSNorms of the (few) rows run on the
// caller between phases. The blocks are fixed by the shape.
//
// Each phase runs on as many members as its work needs (the cost model below): a small
// model's step stays on one or a few cores, whose caches keep their blocks'
// weights from token to token; a wide one spreads over every core.
type stepper struct {
	d       *Decoder
	team    *parallel.Team
	scan    *scan.Stepper
	wt      [][]float32 // per layer: conv weights transposed to (K, E)
	blk     [phases]int // the block of each phase: channels (A, B) or weight rows (X, C, head)
	items   [phases]int // blocks per phase
	workers [phases]int // members per phase

	h, n, x, z, u, dt, y []float32 // (B, D), (B, D), then (B, E) each
	delta, bs, cs        []float32 // (B, R), (B, N), (B, N)
	logits               []float32 // (B, V)
	phase, layer         int
	errs                 []error // per block of phase B: the scan step's error, if any
	body                 parallel.BodyFunc
}

// Phases of a step.
const (
	phaseA = iota
	phaseX
	phaseB
	phaseC
	phaseHead
	phases
)

// The cost model that sizes the phases' teams: nanoseconds on one core per
// weight read (from L2 or farther), per multiply-add, per (row, channel,
// state) of the scan step and per (row, channel) of the conv step. They decide
// only how many cores a phase uses, never a result.
const (
	stepWeightNs  = 0.1
	stepMACNs     = 0.02
	stepScanNs    = 0.8
	stepConvNs    = 2
	stepBlockMin  = 8  // channels or rows of a block, at least
	stepBlockScan = 32 // channels of a block of phase B, at least: the scan step has a fixed cost per call and row
)

// stepMemberNs is the work a member should have for a phase to be worth a
// barrier (tests lower it to spread a tiny model over the team).
var stepMemberNs = 3000.0

// stepBlock returns the block for a dimension of size n: about 64 blocks, a
// multiple of 8, at least least.
func stepBlock(n, least int) int { return max(least, (n/64+7)/8*8) }

func newStepper(d *Decoder) (*stepper, error) {
	cfg := d.m.cfg
	B, D, E, N, K, R, V := d.batch, cfg.DModel, cfg.DInner(), cfg.DState, cfg.DConv, cfg.Rank(), cfg.PaddedVocab()
	xRows := R + 2*N
	sc, err := scan.NewStepper(scan.Shape{Batch: B, Len: 1, Channels: E, State: N}, scan.Options{Softplus: true})
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	s := &stepper{d: d, scan: sc}
	s.blk = [phases]int{stepBlock(E, stepBlockMin), stepBlock(xRows, stepBlockMin), stepBlock(E, stepBlockScan), stepBlock(D, stepBlockMin), stepBlock(V, stepBlockMin)}
	for p, n := range [phases]int{E, xRows, E, D, V} {
		s.items[p] = (n + s.blk[p] - 1) / s.blk[p]
	}
	b := float64(B)
	cost := [phases]float64{
		float64(2*E*D)*(stepWeightNs+b*stepMACNs) + b*float64(E)*stepConvNs,
		float64(xRows*E) * (stepWeightNs + b*stepMACNs),
		float64(E*R)*(stepWeightNs+b*stepMACNs) + b*float64(E*N)*stepScanNs,
		float64(D*E) * (stepWeightNs + b*stepMACNs),
		float64(V*D) * (stepWeightNs + b*stepMACNs),
	}
	size := 1
	for p := range phases {
		s.workers[p] = max(1, min(s.items[p], runtime.GOMAXPROCS(0), int(cost[p]/stepMemberNs)))
		size = max(size, s.workers[p])
	}
	s.team = parallel.NewTeam(size)
	f := func(n int) []float32 { return make([]float32, n) }
	s.h, s.n, s.x, s.z, s.u, s.dt, s.y = f(B*D), f(B*D), f(B*E), f(B*E), f(B*E), f(B*E), f(B*E)
	s.delta, s.bs, s.cs = f(B*R), f(B*N), f(B*N)
	s.logits = f(B * V)
	s.errs = make([]error, s.items[phaseB])
	for range d.m.blocks {
		s.wt = append(s.wt, f(K*E))
	}
	s.body = s.item
	s.reset()
	return s, nil
}

// reset re-reads the conv weights.
func (s *stepper) reset() {
	cfg := s.d.m.cfg
	for l, b := range s.d.m.blocks {
		kernel.ConvTranspose(s.wt[l], b.convW.Value, cfg.DInner(), cfg.DConv)
	}
}

// span returns the channels or rows [lo, hi) of block i of phase p, of a
// dimension of size n.
func (s *stepper) span(p, i, n int) (lo, hi int) { return i * s.blk[p], min(n, (i+1)*s.blk[p]) }

// step advances every row by the tokens ids (one per row) and returns the
// logits, (B, V).
func (s *stepper) step(ids []int32) ([]float32, error) {
	d, cfg := s.d, s.d.m.cfg
	B, D, N := d.batch, cfg.DModel, cfg.DState
	for i, t := range ids {
		copy(s.h[i*D:(i+1)*D], d.m.emb.Value[int(t)*D:])
	}
	eps := float32(cfg.NormEps)
	for l := range d.m.blocks {
		b := &d.m.blocks[l]
		s.layer = l
		for r := 0; r < B; r++ {
			kernel.RMSNormRow(s.n[r*D:(r+1)*D], s.h[r*D:(r+1)*D], b.norm.Value, eps)
		}
		s.run(phaseA)
		if b.xW != nil {
			s.run(phaseX)
		} else { // LTI: B and C are constants
			for r := 0; r < B; r++ {
				copy(s.bs[r*N:(r+1)*N], b.bLTI.Value)
				copy(s.cs[r*N:(r+1)*N], b.cLTI.Value)
			}
		}
		s.run(phaseB)
		for i, err := range s.errs {
			if err != nil {
				return nil, fmt.Errorf("decoder: block %d, channels from %d: %w", l, i*s.blk[phaseB], err)
			}
		}
		s.run(phaseC)
	}
	for r := 0; r < B; r++ {
		kernel.RMSNormRow(s.n[r*D:(r+1)*D], s.h[r*D:(r+1)*D], d.m.normF.Value, eps)
	}
	s.run(phaseHead)
	return s.logits, nil
}

func (s *stepper) run(phase int) {
	s.phase = phase
	s.team.Run(s.body, s.items[phase], s.workers[phase])
}

func (s *stepper) item(_, i int) {
	switch s.phase {
	case phaseA:
		s.inConv(i)
	case phaseX:
		s.xProj(i)
	case phaseB:
		s.scanBlock(i)
	case phaseC:
		s.outProj(i)
	case phaseHead:
		s.head(i)
	}
}

// inConv is phase A for block i: x and z of its channels, then the conv step.
func (s *stepper) inConv(i int) {
	d, cfg := s.d, s.d.m.cfg
	B, D, E, K := d.batch, cfg.DModel, cfg.DInner(), cfg.DConv
	b := &d.m.blocks[s.layer]
	c0, c1 := s.span(phaseA, i, E)
	w, xb, zb := b.inW.Value, value(b.inB), []float32(nil)
	if xb != nil {
		zb = xb[E:]
	}
	rowDots(s.x, s.n, w, xb, B, D, E, c0, c1, false)
	rowDots(s.z, s.n, w[E*D:], zb, B, D, E, c0, c1, false)
	for r := 0; r < B; r++ {
		kernel.ConvStep(s.u[r*E:(r+1)*E], s.x[r*E:(r+1)*E], d.conv[s.layer][r*(K-1)*E:(r+1)*(K-1)*E], s.wt[s.layer], value(b.convB), E, K, c0, c1, true)
	}
}

// xProj is phase X for block i of x_proj's rows: [δ | B | C] of every row,
// the block cut where it crosses from δ to B and from B to C.
func (s *stepper) xProj(i int) {
	d, cfg := s.d, s.d.m.cfg
	B, E, N, R := d.batch, cfg.DInner(), cfg.DState, cfg.Rank()
	w := d.m.blocks[s.layer].xW.Value
	k0, k1 := s.span(phaseX, i, R+2*N)
	for _, part := range [3]struct {
		lo, hi int
		dst    []float32
	}{{0, R, s.delta}, {R, R + N, s.bs}, {R + N, R + 2*N, s.cs}} {
		lo, hi := max(k0, part.lo), min(k1, part.hi)
		if lo < hi {
			kernel.DotRows(part.dst[lo-part.lo:], part.hi-part.lo, s.u, B, w[lo*E:], E, hi-lo, false)
		}
	}
}

// scanBlock is phase B for block i: Δ before the softplus, then one scan step
// of the block's channels from their state, gated by silu(z).
func (s *stepper) scanBlock(i int) {
	d, cfg := s.d, s.d.m.cfg
	B, E, R := d.batch, cfg.DInner(), cfg.Rank()
	b := &d.m.blocks[s.layer]
	c0, c1 := s.span(phaseB, i, E)
	if b.xW != nil {
		kernel.DotRows(s.dt[c0:], E, s.delta, B, b.dtW.Value[c0*R:], R, c1-c0, false)
	} else { // LTI: δ = 0, so Δ = softplus(dt_proj.bias); B and C were set by step
		for r := 0; r < B; r++ {
			clear(s.dt[r*E+c0 : r*E+c1])
		}
	}
	in := scan.Inputs[float32]{U: s.u, Delta: s.dt, A: d.a[s.layer], B: s.bs, C: s.cs, D: b.d.Value, Z: s.z, DeltaBias: b.dtB.Value}
	s.errs[i] = s.scan.Step(in, d.ssm[s.layer], s.y, c0, c1)
}

// outProj is phase C for block i of out_proj's rows: h += y·out_projᵀ (+ b).
func (s *stepper) outProj(i int) {
	d, cfg := s.d, s.d.m.cfg
	b := &d.m.blocks[s.layer]
	j0, j1 := s.span(phaseC, i, cfg.DModel)
	rowDots(s.h, s.y, b.outW.Value, value(b.outB), d.batch, cfg.DInner(), cfg.DModel, j0, j1, true)
}

// head is the logits of block i of vocabulary rows.
func (s *stepper) head(i int) {
	d, cfg := s.d, s.d.m.cfg
	v0, v1 := s.span(phaseHead, i, cfg.PaddedVocab())
	rowDots(s.logits, s.n, d.m.emb.Value, nil, d.batch, cfg.DModel, cfg.PaddedVocab(), v0, v1, false)
}

// rowDots sets y[r, j] = x_r·w_j (+ bias_j) for the weight rows j ∈ [j0, min(j1, out)) of w
// (out, in) and the batch rows x_r of x (batch, in), y being (batch, out); with add the result is
// added to y[r, j]. It is kernel.DotRows over the block (every weight row read once for the
// batch), then the bias: the decoders' products.
func rowDots(y, x, w, bias []float32, batch, in, out, j0, j1 int, add bool) {
	j1 = min(out, j1)
	if j0 >= j1 {
		return
	}
	kernel.DotRows(y[j0:], out, x, batch, w[j0*in:], in, j1-j0, add)
	if bias != nil {
		for r := range batch {
			kernel.AddRow(y[r*out+j0:r*out+j1], bias[j0:])
		}
	}
}
