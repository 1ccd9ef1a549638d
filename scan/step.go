package scan

import (
	"fmt"

	"github.com/mambago/mamba/internal/math32"
)

// Stepper advances the recurrence by one token: the recurrent decoder's step,
//
//	Δ = softplus(δ + bias),  Ā = exp(Δ·A),  h ← Ā⊙h + Δ·u·B,  y = C·h + D·u,  out = y·silu(z),
//
// for every row of a batch of independent sequences. It computes what Fast computes for a
// token, with the same functions in the same order, so a run of Steps from H0 reproduces Fast's
// outputs and final state bit for bit.
//
// A Stepper holds scratch indexed by (row, channel): calls on disjoint channel ranges touch
// disjoint memory and may run concurrently, which is how a decoder splits a step over cores.
type Stepper struct {
	shape Shape
	soft  bool

	dt, ddt, du, sg, y []float32 // (Batch, Channels): Δ, dΔ/dδ, Δ·u, silu(z), C·h
	zeros              []float32 // (Channels): D when there is none; never written
	abar               []float32 // (Batch, Channels, State): Ā of the step
}

// NewStepper returns a Stepper for s, whose Len must be 1: a step is a scan of one token.
// Options.Softplus applies as for New; Chunk and Workers are validated and play no part.
func NewStepper(s Shape, o Options) (*Stepper, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if s.Len != 1 {
		return nil, fmt.Errorf("scan: Stepper shape %+v: Len must be 1 (a step is one token)", s)
	}
	v := func(n int) []float32 { return make([]float32, n) }
	rc := s.Batch * s.Channels
	return &Stepper{shape: s, soft: o.Softplus, dt: v(rc), ddt: v(rc), du: v(rc), sg: v(rc), y: v(rc),
		zeros: v(s.Channels), abar: v(rc * s.State)}, nil
}

// Shape returns the shape the Stepper was made for (Len 1).
func (p *Stepper) Shape() Shape { return p.shape }

// Step advances the states h ((Batch, Channels, State), updated in place) of the channels
// [c0, c1) of every row by one token and writes those channels of out ((Batch, Channels)).
// in is laid out as for a scan of Len 1: U, Delta, Z (Batch, Channels); B, C (Batch, State);
// A, D, DeltaBias as always. in.H0 must be nil (h is the state); in.Resets (Batch) may mark
// rows whose state is taken as zero before the step (a new document). Step allocates nothing.
func (p *Stepper) Step(in Inputs[float32], h, out []float32, c0, c1 int) error {
	s := p.shape
	if err := checkInputs(s, in); err != nil {
		return err
	}
	if in.H0 != nil {
		return fmt.Errorf("scan: Step: Inputs.H0 must be nil (the state is h)")
	}
	if err := checkSlots(s, slot[float32]{"h", h, states, false}, slot[float32]{"out", out, tokens, false}); err != nil {
		return err
	}
	if c0 < 0 || c0 > c1 || c1 > s.Channels {
		return fmt.Errorf("scan: Step: channels [%d, %d) are not a range of [0, %d)", c0, c1, s.Channels)
	}
	if c0 == c1 {
		return nil
	}
	N, d, w := s.State, s.Channels, c1-c0
	var bias []float32
	if in.DeltaBias != nil {
		bias = in.DeltaBias[c0:c1]
	}
	for r := range s.Batch {
		i0, i1 := r*d+c0, r*d+c1
		dt, ddt, du, y := p.dt[i0:i1], p.ddt[i0:i1], p.du[i0:i1], p.y[i0:i1]
		biasRow(dt, in.Delta[i0:i1], bias)
		deltaRow(p.soft, dt, ddt)
		mulRow(du, dt, in.U[i0:i1])
		var silu []float32
		if in.Z != nil {
			silu = p.sg[i0:i1]
			math32.SiLURow(silu, in.Z[i0:i1])
		}
		hr, abar := h[i0*N:i1*N], p.abar[i0*N:i1*N]
		if in.Resets != nil && in.Resets[r] != 0 {
			clear(hr)
		}
		// The channels are the iterations of the recurrence: each its own Ā row and state row,
		// the row's B and C for all.
		math32.ExpScaledRows(abar, N, dt, 1, in.A[c0*N:c1*N], N)
		recur(hr, abar, in.B[r*N:][:N], in.C[r*N:][:N], du, y, hr, w, N, 1, 0, true)
		D := p.zeros[c0:c1]
		if in.D != nil {
			D = in.D[c0:c1]
		}
		outRow(out[i0:i1], y, D, in.U[i0:i1], silu)
	}
	return nil
}
