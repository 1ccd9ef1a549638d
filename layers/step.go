package layers

import (
	"fmt"

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
//	B  per block of channels: dt = δ·dt_projᵀ, the scan step (package scan, length 1) with the gate → y
//	C  per block of out_proj rows: h += y·out_projᵀ (+ b)
//
// and, after the last block, logits = RMSNorm(h)·Embᵀ per block of vocabulary
// rows. Every output element is one dot product over whole rows of the
// weights (each read once per step), so no phase has partial sums to reduce
// and the results do not depend on the blocks or on the team's size. The
// RMSNorms of the (few) rows run on the caller between phases. The blocks are
// fixed by the shape.
type stepper struct {
	d     *Decoder
	team  *parallel.Team
	blkA  int         // channels per block of phase A
	blk   int         // channels per block of phase B, of the scan and of its state
	wt    [][]float32 // per layer: conv weights transposed to (K, E)
	scans []*scan.Fast

	h, n, x, z, u, y []float32 // (B, D), (B, D), then (B, E) each
	delta, bs, cs    []float32 // (B, R), (B, N), (B, N)
	ub, zb, dtb, yb  []float32 // per block of phase B, (B, blk) each: the scan's inputs and output
	logits           []float32 // (B, V)
	phase, layer     int
	errs             []error // per block: the scan's error, if any
	body             parallel.BodyFunc
}

// Phases of a step.
const (
	phaseA = iota
	phaseX
	phaseB
	phaseC
	phaseHead
)

// Rows of x_proj, out_proj and the embedding in one block of phases X, C and
// the head.
const (
	stepXRows   = 4
	stepOutRows = 16
	stepVocab   = 16
)

// stepBlocks returns the channels in one block of phase A, E/48 rounded up to
// a multiple of 32 (a wide model has about 48 blocks of dot products), and
// of phase B, E/16 rounded up to a multiple of 32, at least 64 (a scan call
// has a fixed cost).
func stepBlocks(e int) (a, b int) { return max(32, (e/48+31)/32*32), max(64, (e/16+31)/32*32) }

func newStepper(d *Decoder) (*stepper, error) {
	cfg := d.m.cfg
	B, D, E, N, K, R, V := d.batch, cfg.DModel, cfg.DInner(), cfg.DState, cfg.DConv, cfg.Rank(), cfg.PaddedVocab()
	s := &stepper{d: d, team: parallel.NewTeam(0)}
	s.blkA, s.blk = stepBlocks(E)
	for c0 := 0; c0 < E; c0 += s.blk {
		k, err := scan.New(scan.Shape{Batch: B, Len: 1, Channels: min(E, c0+s.blk) - c0, State: N}, scan.Options{Softplus: true, Workers: 1})
		if err != nil {
			s.team.Close()
			return nil, fmt.Errorf("decoder: %w", err)
		}
		s.scans = append(s.scans, k)
	}
	f := func(n int) []float32 { return make([]float32, n) }
	s.h, s.n, s.x, s.z, s.u, s.y = f(B*D), f(B*D), f(B*E), f(B*E), f(B*E), f(B*E)
	s.delta, s.bs, s.cs = f(B*R), f(B*N), f(B*N)
	s.ub, s.zb, s.dtb, s.yb = f(B*E), f(B*E), f(B*E), f(B*E)
	s.logits = f(B * V)
	s.errs = make([]error, len(s.scans))
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

// blockOf returns the channels [c0, c1) of block i of phase B.
func (s *stepper) blockOf(i int) (c0, c1 int) {
	E := s.d.m.cfg.DInner()
	return i * s.blk, min(E, (i+1)*s.blk)
}

// step advances every row by the tokens ids (one per row) and returns the
// logits, (B, V).
func (s *stepper) step(ids []int32) ([]float32, error) {
	d, cfg := s.d, s.d.m.cfg
	B, D, E, N, R, V := d.batch, cfg.DModel, cfg.DInner(), cfg.DState, cfg.Rank(), cfg.PaddedVocab()
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
		s.run(phaseA, (E+s.blkA-1)/s.blkA)
		if b.xW != nil {
			s.run(phaseX, (R+2*N+stepXRows-1)/stepXRows)
		} else { // LTI: B and C are constants
			for r := 0; r < B; r++ {
				copy(s.bs[r*N:(r+1)*N], b.bLTI.Value)
				copy(s.cs[r*N:(r+1)*N], b.cLTI.Value)
			}
		}
		s.run(phaseB, len(s.scans))
		for i, err := range s.errs {
			if err != nil {
				return nil, fmt.Errorf("decoder: block %d, channels from %d: %w", l, i*s.blk, err)
			}
		}
		d.ssm[l], d.spare = d.spare, d.ssm[l]
		s.run(phaseC, (D+stepOutRows-1)/stepOutRows)
	}
	for r := 0; r < B; r++ {
		kernel.RMSNormRow(s.n[r*D:(r+1)*D], s.h[r*D:(r+1)*D], d.m.normF.Value, eps)
	}
	s.run(phaseHead, (V+stepVocab-1)/stepVocab)
	return s.logits, nil
}

func (s *stepper) run(phase, n int) {
	s.phase = phase
	s.team.Run(s.body, n)
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
	c0, c1 := i*s.blkA, min(E, (i+1)*s.blkA)
	for c := c0; c < c1; c++ {
		wx, wz := b.inW.Value[c*D:(c+1)*D], b.inW.Value[(E+c)*D:(E+c+1)*D]
		for r := 0; r < B; r++ {
			n := s.n[r*D : (r+1)*D]
			x, z := kernel.Dot(n, wx), kernel.Dot(n, wz)
			if b.inB != nil {
				x += b.inB.Value[c]
				z += b.inB.Value[E+c]
			}
			s.x[r*E+c], s.z[r*E+c] = x, z
		}
	}
	var bias []float32
	if b.convB != nil {
		bias = b.convB.Value
	}
	for r := 0; r < B; r++ {
		kernel.ConvStep(s.u[r*E:(r+1)*E], s.x[r*E:(r+1)*E], d.conv[s.layer][r*(K-1)*E:(r+1)*(K-1)*E], s.wt[s.layer], bias, E, K, c0, c1, true)
	}
}

// xProj is phase X for block i of x_proj's rows: [δ | B | C] of every row.
func (s *stepper) xProj(i int) {
	d, cfg := s.d, s.d.m.cfg
	B, E, N, R := d.batch, cfg.DInner(), cfg.DState, cfg.Rank()
	w := d.m.blocks[s.layer].xW.Value
	for k := i * stepXRows; k < min(R+2*N, (i+1)*stepXRows); k++ {
		row := w[k*E : (k+1)*E]
		for r := 0; r < B; r++ {
			v := kernel.Dot(s.u[r*E:(r+1)*E], row)
			switch {
			case k < R:
				s.delta[r*R+k] = v
			case k < R+N:
				s.bs[r*N+k-R] = v
			default:
				s.cs[r*N+k-R-N] = v
			}
		}
	}
}

// scanBlock is phase B for block i: Δ before the softplus, then one scan step
// of the block's channels from their state, gated by silu(z).
func (s *stepper) scanBlock(i int) {
	d, cfg := s.d, s.d.m.cfg
	B, E, N, R := d.batch, cfg.DInner(), cfg.DState, cfg.Rank()
	b := &d.m.blocks[s.layer]
	c0, c1 := s.blockOf(i)
	w := c1 - c0
	dtb := s.dtb[B*c0 : B*c1]
	if b.xW != nil {
		for c := c0; c < c1; c++ {
			row := b.dtW.Value[c*R : (c+1)*R]
			for r := 0; r < B; r++ {
				dtb[r*w+c-c0] = kernel.Dot(s.delta[r*R:(r+1)*R], row)
			}
		}
	} else { // LTI: δ = 0, so Δ = softplus(dt_proj.bias); B and C were set by step
		clear(dtb)
	}
	ub, zb, yb := s.ub[B*c0:B*c1], s.zb[B*c0:B*c1], s.yb[B*c0:B*c1]
	for r := 0; r < B; r++ {
		copy(ub[r*w:(r+1)*w], s.u[r*E+c0:])
		copy(zb[r*w:(r+1)*w], s.z[r*E+c0:])
	}
	in := scan.Inputs[float32]{U: ub, Delta: dtb, A: d.a[s.layer][c0*N : c1*N], B: s.bs, C: s.cs,
		D: b.d.Value[c0:c1], Z: zb, DeltaBias: b.dtB.Value[c0:c1], H0: d.ssm[s.layer][B*c0*N : B*c1*N]}
	s.errs[i] = s.scans[i].Forward(in, yb, d.spare[B*c0*N:B*c1*N])
	for r := 0; r < B; r++ {
		copy(s.y[r*E+c0:r*E+c1], yb[r*w:(r+1)*w])
	}
}

// outProj is phase C for block i of out_proj's rows: h += y·out_projᵀ (+ b).
func (s *stepper) outProj(i int) {
	cfg := s.d.m.cfg
	b := &s.d.m.blocks[s.layer]
	rowDots(s.h, s.y, b.outW.Value, value(b.outB), s.d.batch, cfg.DInner(), cfg.DModel, i*stepOutRows, (i+1)*stepOutRows, true)
}

// head is the logits of block i of vocabulary rows.
func (s *stepper) head(i int) {
	cfg := s.d.m.cfg
	rowDots(s.logits, s.n, s.d.m.emb.Value, nil, s.d.batch, cfg.DModel, cfg.PaddedVocab(), i*stepVocab, (i+1)*stepVocab, false)
}

// rowDots sets y[r, j] = x_r·w_j (+ bias_j) for the weight rows j ∈ [j0, min(j1, out)) of w
// (out, in) and the batch rows x_r of x (batch, in), y being (batch, out); with add the result is
// added to y[r, j]. Every output is one dot product over a whole weight row, read once for the
// batch: the decoders' products.
func rowDots(y, x, w, bias []float32, batch, in, out, j0, j1 int, add bool) {
	for j := j0; j < min(out, j1); j++ {
		row := w[j*in : (j+1)*in]
		for r := range batch {
			v := kernel.Dot(x[r*in:(r+1)*in], row)
			if bias != nil {
				v += bias[j]
			}
			if add {
				v += y[r*out+j]
			}
			y[r*out+j] = v
		}
	}
}

// toBlocks rewrites an SSM state from the scan's (B, E, N) layout into the
// step's: block after block of channels, each (B, channels of the block, N).
// toScan is the inverse. They coincide for one row.
func (s *stepper) toBlocks(dst, src []float32) { s.relayout(dst, src, true) }
func (s *stepper) toScan(dst, src []float32)   { s.relayout(dst, src, false) }

func (s *stepper) relayout(dst, src []float32, toBlocks bool) {
	cfg := s.d.m.cfg
	B, E, N := s.d.batch, cfg.DInner(), cfg.DState
	for i := range s.scans {
		c0, c1 := s.blockOf(i)
		for r := 0; r < B; r++ {
			for c := c0; c < c1; c++ {
				blk, full := (B*c0+r*(c1-c0)+c-c0)*N, (r*E+c)*N
				if toBlocks {
					copy(dst[blk:blk+N], src[full:])
				} else {
					copy(dst[full:full+N], src[blk:])
				}
			}
		}
	}
}
