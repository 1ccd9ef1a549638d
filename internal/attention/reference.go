package attention

import "math"

// Reference is the plain float64 causal attention: for each (sequence, head) it materialises the
// L×L scores with −∞ where the mask hides a key, takes a row softmax and multiplies by V; the
// backward uses the same matrices and the softmax Jacobian written out (dS = P∘(dP − rowsum(P∘dP))),
// with no shared code with the tiled kernel it checks. It implements Kernel[float64].
type Reference struct {
	shape  Shape
	starts []int32   // (Batch·Len)
	s, dp  []float64 // (Len, Len): scores then probabilities; dP then dS
}

var _ Kernel[float64] = (*Reference)(nil)

// NewReference returns the float64 reference for shape s; Options are validated and ignored.
func NewReference(s Shape, o Options) (*Reference, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Reference{shape: s, starts: make([]int32, s.Batch*s.Len), s: make([]float64, s.Len*s.Len), dp: make([]float64, s.Len*s.Len)}, nil
}

// Shape returns the shape the reference was made for.
func (r *Reference) Shape() Shape { return r.shape }

// probs fills r.s with P of head h of sequence b: P_ij = softmax_j(c·q_i·k_j) over the keys j ≤ i
// of row i's document, 0 for the others.
func (r *Reference) probs(in Inputs[float64], b, h int) {
	s := r.shape
	L, hd := s.Len, s.HeadDim
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	g := h / s.Group()
	if in.Resets != nil {
		docStarts(r.starts, in.Resets, s.Batch, L)
	} else {
		clear(r.starts)
	}
	for i := range L {
		row := r.s[i*L : (i+1)*L]
		q := in.Q[(b*L+i)*ldq+h*hd:][:hd]
		for j := range L {
			row[j] = math.Inf(-1)
			if j <= i && j >= int(r.starts[b*L+i]) {
				k := in.K[(b*L+j)*ldk+g*hd:][:hd]
				var d float64
				for x := range hd {
					d += q[x] * k[x]
				}
				row[j] = s.Scale() * d
			}
		}
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var z float64
		for j, v := range row {
			row[j] = math.Exp(v - mx)
			z += row[j]
		}
		for j := range row {
			row[j] /= z
		}
	}
}

// Forward implements Kernel: out_i = Σ_j P_ij v_j.
func (r *Reference) Forward(in Inputs[float64], out []float64) error {
	if err := checkForward(r.shape, in, out); err != nil {
		return err
	}
	s := r.shape
	L, hd := s.Len, s.HeadDim
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	for b := range s.Batch {
		for h := range s.Heads {
			r.probs(in, b, h)
			g := h / s.Group()
			for i := range L {
				o := out[(b*L+i)*ldq+h*hd:][:hd]
				clear(o)
				for j := range L {
					v := in.V[(b*L+j)*ldk+g*hd:][:hd]
					for x := range hd {
						o[x] += r.s[i*L+j] * v[x]
					}
				}
			}
		}
	}
	return nil
}

// Backward implements Kernel with the materialised P: dV = Pᵀ dO, dP = dO Vᵀ,
// dS = P∘(dP − rowsum(P∘dP)), dQ = c·dS K, dK = c·dSᵀ Q, dK and dV summed over each group's heads.
// out is not used: the reference recomputes everything from the inputs.
func (r *Reference) Backward(in Inputs[float64], out, dout []float64, g Grads[float64]) error {
	if err := checkBackward(r.shape, in, out, dout, g); err != nil {
		return err
	}
	s := r.shape
	L, hd := s.Len, s.HeadDim
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	for _, x := range [][]float64{g.Q, g.K, g.V} {
		clear(x)
	}
	at := func(x []float64, i, ld, head int) []float64 {
		if x == nil {
			return nil
		}
		return x[i*ld+head*hd:][:hd]
	}
	for b := range s.Batch {
		for h := range s.Heads {
			r.probs(in, b, h)
			kh := h / s.Group()
			for i := range L {
				do := dout[(b*L+i)*ldq+h*hd:][:hd]
				var rowsum float64
				for j := range L {
					v := in.V[(b*L+j)*ldk+kh*hd:][:hd]
					var d float64
					for x := range hd {
						d += do[x] * v[x]
					}
					r.dp[i*L+j] = d
					rowsum += r.s[i*L+j] * d
				}
				for j := range L {
					p := r.s[i*L+j]
					ds := s.Scale() * p * (r.dp[i*L+j] - rowsum)
					q, k := at(in.Q, b*L+i, ldq, h), at(in.K, b*L+j, ldk, kh)
					gq, gk, gv := at(g.Q, b*L+i, ldq, h), at(g.K, b*L+j, ldk, kh), at(g.V, b*L+j, ldk, kh)
					for x := range hd {
						if gq != nil {
							gq[x] += ds * k[x]
						}
						if gk != nil {
							gk[x] += ds * q[x]
						}
						if gv != nil {
							gv[x] += p * do[x]
						}
					}
				}
			}
		}
	}
	return nil
}
