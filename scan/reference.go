package scan

import (
	"math"

	"github.com/mambago/mamba/internal/math32"
)

// Reference is the plain float64 sequential selective scan: one (batch, channel) at a time, one
// timestep after the other, math.Exp and math.Log1p, the formulas of the package doc written out
// literally. It is the oracle for the fast kernel and implements Kernel[float64].
type Reference struct {
	shape Shape
	hist  []float64 // (Len+1, State): h_{t-1} for t = 0..Len of the current (batch, channel)
	ys    []float64 // (Len): pre-gate output y_t of the current (batch, channel)
	mu    []float64 // (State): d(loss)/d(h_t) flowing back from step t+1
	zero  []float64 // (State): the state entering a step where a document starts
	soft  bool
}

var _ Kernel[float64] = (*Reference)(nil)

// NewReference returns the float64 sequential reference for shape s. Of the options only Softplus
// matters; Chunk and Workers are validated and ignored.
func NewReference(s Shape, o Options) (*Reference, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Reference{
		shape: s,
		hist:  make([]float64, (s.Len+1)*s.State),
		ys:    make([]float64, s.Len),
		mu:    make([]float64, s.State),
		zero:  make([]float64, s.State),
		soft:  o.Softplus,
	}, nil
}

// Shape returns the shape the reference was made for.
func (r *Reference) Shape() Shape { return r.shape }

// delta returns Δ = softplus(δ + bias) (or δ + bias) and dΔ/dδ.
func (r *Reference) delta(in Inputs[float64], i, c int) (float64, float64) {
	x := in.Delta[i]
	if in.DeltaBias != nil {
		x += in.DeltaBias[c]
	}
	if !r.soft || x > math32.SoftplusThreshold {
		return x, 1
	}
	return math.Log1p(math.Exp(x)), 1 / (1 + math.Exp(-x))
}

// reset reports whether a document starts at step t of batch row b.
func reset[T float32 | float64](in Inputs[T], s Shape, b, t int) bool {
	return in.Resets != nil && in.Resets[b*s.Len+t] != 0
}

// prev returns the state entering step t, kept in r.hist by run: h_{t−1}, or zero where a
// document starts.
func (r *Reference) prev(in Inputs[float64], b, t int) []float64 {
	if reset(in, r.shape, b, t) {
		return r.zero
	}
	return r.hist[t*r.shape.State:][:r.shape.State]
}

// run recomputes the states h_{-1..L-1} into r.hist and the pre-gate outputs into r.ys for one
// (batch b, channel c).
func (r *Reference) run(in Inputs[float64], b, c int) {
	s := r.shape
	N := s.State
	if in.H0 != nil {
		copy(r.hist[:N], in.H0[(b*s.Channels+c)*N:])
	} else {
		clear(r.hist[:N])
	}
	A := in.A[c*N : (c+1)*N]
	for t := range s.Len {
		i := (b*s.Len+t)*s.Channels + c
		dt, _ := r.delta(in, i, c)
		u := in.U[i]
		Bt := in.B[(b*s.Len+t)*N:][:N]
		Ct := in.C[(b*s.Len+t)*N:][:N]
		prev, cur := r.prev(in, b, t), r.hist[(t+1)*N:][:N]
		y := 0.0
		for n := range N {
			cur[n] = math.Exp(dt*A[n])*prev[n] + dt*Bt[n]*u
			y += Ct[n] * cur[n]
		}
		if in.D != nil {
			y += in.D[c] * u
		}
		r.ys[t] = y
	}
}

// Forward implements Kernel.
func (r *Reference) Forward(in Inputs[float64], out, last []float64) error {
	s := r.shape
	if err := checkForward(s, in, out, last); err != nil {
		return err
	}
	N := s.State
	for b := range s.Batch {
		for c := range s.Channels {
			r.run(in, b, c)
			for t := range s.Len {
				i := (b*s.Len+t)*s.Channels + c
				out[i] = r.ys[t]
				if in.Z != nil {
					out[i] *= in.Z[i] / (1 + math.Exp(-in.Z[i]))
				}
			}
			if last != nil {
				copy(last[(b*s.Channels+c)*N:][:N], r.hist[s.Len*N:])
			}
		}
	}
	return nil
}

// Backward implements Kernel with the adjoint recurrence of the package doc, run backwards in
// time per (batch, channel).
func (r *Reference) Backward(in Inputs[float64], dout, dlast []float64, g Grads[float64]) error {
	s := r.shape
	if err := checkBackward(s, in, dout, dlast, g); err != nil {
		return err
	}
	N := s.State
	for _, x := range [][]float64{g.A, g.B, g.C, g.D, g.DeltaBias} {
		clear(x)
	}
	for b := range s.Batch {
		for c := range s.Channels {
			r.run(in, b, c)
			if dlast != nil {
				copy(r.mu, dlast[(b*s.Channels+c)*N:][:N])
			} else {
				clear(r.mu)
			}
			A := in.A[c*N : (c+1)*N]
			for t := s.Len - 1; t >= 0; t-- {
				i := (b*s.Len+t)*s.Channels + c
				dt, ddt := r.delta(in, i, c)
				u := in.U[i]
				gh := dout[i] // ĝ_t = d(loss)/d(y_t)
				if in.Z != nil {
					z := in.Z[i]
					sg := 1 / (1 + math.Exp(-z))
					if g.Z != nil {
						g.Z[i] = dout[i] * r.ys[t] * sg * (1 + z*(1-sg))
					}
					gh = dout[i] * z * sg
				}
				du := 0.0
				if in.D != nil {
					du = in.D[c] * gh
				}
				if g.D != nil {
					g.D[c] += gh * u
				}
				Bt := in.B[(b*s.Len+t)*N:][:N]
				Ct := in.C[(b*s.Len+t)*N:][:N]
				prev, cur := r.prev(in, b, t), r.hist[(t+1)*N:][:N]
				dDelta := 0.0
				for n := range N {
					abar := math.Exp(dt * A[n])
					lam := Ct[n]*gh + r.mu[n] // λ_t = C_t·ĝ_t + Ā_{t+1}·λ_{t+1}
					if g.C != nil {
						g.C[(b*s.Len+t)*N+n] += gh * cur[n]
					}
					if g.B != nil {
						g.B[(b*s.Len+t)*N+n] += lam * dt * u
					}
					du += lam * dt * Bt[n]
					dDelta += lam * (Bt[n]*u + A[n]*abar*prev[n])
					if g.A != nil {
						g.A[c*N+n] += lam * dt * abar * prev[n]
					}
					r.mu[n] = abar * lam
				}
				if reset(in, s, b, t) {
					clear(r.mu) // h_{t−1} does not reach h_t
				}
				if g.U != nil {
					g.U[i] = du
				}
				if g.Delta != nil {
					g.Delta[i] = dDelta * ddt
				}
				if g.DeltaBias != nil {
					g.DeltaBias[c] += dDelta * ddt
				}
			}
			if g.H0 != nil {
				copy(g.H0[(b*s.Channels+c)*N:][:N], r.mu)
			}
		}
	}
	return nil
}
