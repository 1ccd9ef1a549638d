package layers

import (
	"fmt"
	"math"
)

// ref64 is a plain float64 transcription of MambaForCausalLM (transformers'
// slow path): the full-sequence forward and the recurrent step, with no
// shared code with the float32 paths it checks.
type ref64 struct {
	cfg Config
	w   map[string][]float64
}

func newRef64(m *Model) *ref64 {
	r := &ref64{cfg: m.cfg, w: map[string][]float64{}}
	for _, p := range m.params {
		v := make([]float64, len(p.Value))
		for i, x := range p.Value {
			v[i] = float64(x)
		}
		r.w[p.Name] = v
	}
	return r
}

func (r *ref64) p(layer int, name string) []float64 {
	if layer < 0 {
		return r.w["backbone."+name]
	}
	return r.w[fmt.Sprintf("backbone.layers.%d.%s", layer, name)]
}

// lin64 returns x (rows, in) · wᵀ (+ b) with w (out, in).
func lin64(x []float64, rows, in int, w []float64, out int, b []float64) []float64 {
	y := make([]float64, rows*out)
	for i := 0; i < rows; i++ {
		for o := 0; o < out; o++ {
			var s float64
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[o*in+k]
			}
			if b != nil {
				s += b[o]
			}
			y[i*out+o] = s
		}
	}
	return y
}

func rms64(x []float64, rows, d int, w []float64, eps float64) []float64 {
	y := make([]float64, len(x))
	for i := 0; i < rows; i++ {
		var ss float64
		for k := 0; k < d; k++ {
			ss += x[i*d+k] * x[i*d+k]
		}
		s := 1 / math.Sqrt(ss/float64(d)+eps)
		for k := 0; k < d; k++ {
			y[i*d+k] = x[i*d+k] * s * w[k]
		}
	}
	return y
}

func silu64(x float64) float64 { return x / (1 + math.Exp(-x)) }

func softplus64(x float64) float64 {
	if x > 20 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

// deltaBC returns Δ (rows, E) and B, C (rows, N) from the conv output xc.
func (r *ref64) deltaBC(l int, xc []float64, rows int) (delta, B, C []float64) {
	c := r.cfg
	E, N, R := c.DInner(), c.DState, c.Rank()
	bias := r.p(l, "mixer.dt_proj.bias")
	delta, B, C = make([]float64, rows*E), make([]float64, rows*N), make([]float64, rows*N)
	if !c.Selective {
		for i := 0; i < rows; i++ {
			for e := 0; e < E; e++ {
				delta[i*E+e] = softplus64(bias[e])
			}
			copy(B[i*N:], r.p(l, "mixer.B"))
			copy(C[i*N:], r.p(l, "mixer.C"))
		}
		return
	}
	dbl := lin64(xc, rows, E, r.p(l, "mixer.x_proj.weight"), R+2*N, nil)
	dtIn := make([]float64, rows*R)
	for i := 0; i < rows; i++ {
		copy(dtIn[i*R:], dbl[i*(R+2*N):i*(R+2*N)+R])
		copy(B[i*N:], dbl[i*(R+2*N)+R:i*(R+2*N)+R+N])
		copy(C[i*N:], dbl[i*(R+2*N)+R+N:(i+1)*(R+2*N)])
	}
	dt := lin64(dtIn, rows, R, r.p(l, "mixer.dt_proj.weight"), E, bias)
	for i := range dt {
		delta[i] = softplus64(dt[i])
	}
	return
}

// forward returns logits (batch·L, V) for ids (batch, L).
func (r *ref64) forward(ids []int32, batch, L int) []float64 {
	return r.forwardDocs(ids, nil, batch, L)
}

// forwardDocs is forward on packed documents: where resets (batch, L) is not
// 0 a document starts, and the conv and the state see nothing before it.
func (r *ref64) forwardDocs(ids []int32, resets []uint8, batch, L int) []float64 {
	c := r.cfg
	// first[i] is the first token of token i's document.
	first := make([]int, batch*L)
	for b := 0; b < batch; b++ {
		for t := 0; t < L; t++ {
			switch i := b*L + t; {
			case t == 0:
				first[i] = 0
			case resets != nil && resets[i] != 0:
				first[i] = t
			default:
				first[i] = first[i-1]
			}
		}
	}
	D, E, N, K, V := c.DModel, c.DInner(), c.DState, c.DConv, c.PaddedVocab()
	rows := batch * L
	emb := r.p(-1, "embeddings.weight")
	h := make([]float64, rows*D)
	for i, t := range ids {
		copy(h[i*D:(i+1)*D], emb[int(t)*D:])
	}
	for l := 0; l < c.NLayer; l++ {
		n := rms64(h, rows, D, r.p(l, "norm.weight"), c.NormEps)
		xz := lin64(n, rows, D, r.p(l, "mixer.in_proj.weight"), 2*E, r.p(l, "mixer.in_proj.bias"))
		w, cb := r.p(l, "mixer.conv1d.weight"), r.p(l, "mixer.conv1d.bias")
		xc := make([]float64, rows*E)
		for b := 0; b < batch; b++ {
			for t := 0; t < L; t++ {
				for e := 0; e < E; e++ {
					var s float64
					if cb != nil {
						s = cb[e]
					}
					for k := 0; k < K; k++ {
						if tt := t - (K - 1) + k; tt >= first[b*L+t] {
							s += w[e*K+k] * xz[(b*L+tt)*2*E+e]
						}
					}
					xc[(b*L+t)*E+e] = silu64(s)
				}
			}
		}
		delta, B, C := r.deltaBC(l, xc, rows)
		aLog, Dp := r.p(l, "mixer.A_log"), r.p(l, "mixer.D")
		y := make([]float64, rows*E)
		for b := 0; b < batch; b++ {
			for e := 0; e < E; e++ {
				hs := make([]float64, N)
				for t := 0; t < L; t++ {
					i := b*L + t
					if first[i] == t {
						clear(hs)
					}
					var acc float64
					for s := 0; s < N; s++ {
						hs[s] = math.Exp(-delta[i*E+e]*math.Exp(aLog[e*N+s]))*hs[s] + delta[i*E+e]*B[i*N+s]*xc[i*E+e]
						acc += C[i*N+s] * hs[s]
					}
					acc += Dp[e] * xc[i*E+e]
					y[i*E+e] = acc * silu64(xz[i*2*E+E+e])
				}
			}
		}
		out := lin64(y, rows, E, r.p(l, "mixer.out_proj.weight"), D, r.p(l, "mixer.out_proj.bias"))
		for i := range h {
			h[i] += out[i]
		}
	}
	hf := rms64(h, rows, D, r.p(-1, "norm_f.weight"), c.NormEps)
	return lin64(hf, rows, D, emb, V, nil)
}

// refStep is the float64 recurrent step: conv state (E, K) and SSM state
// (E, N) per block, batch 1.
type refStep struct {
	r         *ref64
	conv, ssm [][]float64
}

func (r *ref64) newStep() *refStep {
	c := r.cfg
	s := &refStep{r: r}
	for l := 0; l < c.NLayer; l++ {
		s.conv = append(s.conv, make([]float64, c.DInner()*c.DConv))
		s.ssm = append(s.ssm, make([]float64, c.DInner()*c.DState))
	}
	return s
}

// step feeds one token and returns the next-token logits (V).
func (s *refStep) step(tok int32) []float64 {
	r, c := s.r, s.r.cfg
	D, E, N, K, V := c.DModel, c.DInner(), c.DState, c.DConv, c.PaddedVocab()
	emb := r.p(-1, "embeddings.weight")
	h := append([]float64(nil), emb[int(tok)*D:(int(tok)+1)*D]...)
	for l := 0; l < c.NLayer; l++ {
		n := rms64(h, 1, D, r.p(l, "norm.weight"), c.NormEps)
		xz := lin64(n, 1, D, r.p(l, "mixer.in_proj.weight"), 2*E, r.p(l, "mixer.in_proj.bias"))
		w, cb := r.p(l, "mixer.conv1d.weight"), r.p(l, "mixer.conv1d.bias")
		xc := make([]float64, E)
		for e := 0; e < E; e++ {
			st := s.conv[l][e*K : (e+1)*K]
			copy(st, st[1:])
			st[K-1] = xz[e]
			var v float64
			if cb != nil {
				v = cb[e]
			}
			for k := 0; k < K; k++ {
				v += w[e*K+k] * st[k]
			}
			xc[e] = silu64(v)
		}
		delta, B, C := r.deltaBC(l, xc, 1)
		aLog, Dp := r.p(l, "mixer.A_log"), r.p(l, "mixer.D")
		y := make([]float64, E)
		for e := 0; e < E; e++ {
			hs := s.ssm[l][e*N : (e+1)*N]
			var acc float64
			for k := 0; k < N; k++ {
				hs[k] = math.Exp(-delta[e]*math.Exp(aLog[e*N+k]))*hs[k] + delta[e]*B[k]*xc[e]
				acc += C[k] * hs[k]
			}
			y[e] = (acc + Dp[e]*xc[e]) * silu64(xz[E+e])
		}
		out := lin64(y, 1, E, r.p(l, "mixer.out_proj.weight"), D, r.p(l, "mixer.out_proj.bias"))
		for i := range h {
			h[i] += out[i]
		}
	}
	return lin64(rms64(h, 1, D, r.p(-1, "norm_f.weight"), c.NormEps), 1, D, emb, V, nil)
}

// crossEntropy64 is the mean of −log softmax(logits)[target] over targets ≠ −1.
func crossEntropy64(logits []float64, targets []int32, V int) float64 {
	var sum float64
	n := 0
	for i, t := range targets {
		if t < 0 {
			continue
		}
		row := logits[i*V : (i+1)*V]
		mx := row[0]
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - mx)
		}
		sum += math.Log(z) + mx - row[t]
		n++
	}
	return sum / float64(n)
}
