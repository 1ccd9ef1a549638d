package autograd

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/parallel"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CausalConv1d is the depthwise causal convolution over time of the Mamba
// block: x is (batch·L, ch) token-major, w is (ch, K), b is (ch) or nil, and
//
//	c[b,t,d] = b_d + Σ_{k<K} w[d,k]·x[b, t−(K−1)+k, d]   (x = 0 before t = 0)
//	y = silu(c) = c·σ(c) if silu, else y = c
//
// w[d,K−1] multiplies the current step, as PyTorch's Conv1d (a
// cross-correlation) with K−1 steps of left padding. Sequences of the batch
// never see each other.
func CausalConv1d(batch int, x, w, b *gorgonia.Node, silu bool) (*gorgonia.Node, error) {
	const op = "CausalConv1d"
	nodes, _, dt, rows, ch, err := tokenInputs(op, batch, arg{"x", x, false}, arg{"w", w, false}, arg{"b", b, true})
	if err != nil {
		return nil, err
	}
	if err := checkShape(op, "w", w, ch, -1); err != nil {
		return nil, err
	}
	kw := w.Shape()[1]
	if kw < 1 {
		return nil, fmt.Errorf("autograd: %s: kernel width %d, want at least 1", op, kw)
	}
	in := []tensor.Shape{{rows, ch}, {ch, kw}}
	if b != nil {
		if err := checkShape(op, "b", b, ch); err != nil {
			return nil, err
		}
		in = append(in, tensor.Shape{ch})
	}
	geo := convGeom{batch: batch, l: rows / batch, ch: ch, k: kw, bias: b != nil, silu: silu}
	s := spec{
		name:  fmt.Sprintf("%s{batch=%d,bias=%t,silu=%t}", op, batch, geo.bias, silu),
		dtype: dt,
		in:    in,
		out:   tensor.Shape{rows, ch},
	}
	return build(s,
		func() kernel[float32] { return newConv32(geo) },
		func() kernel[float64] { return &convRef{geo} },
		nodes...)
}

// convGeom is the shape of a causal convolution.
type convGeom struct {
	batch, l, ch, k int
	bias, silu      bool
}

// convSteps is the number of time steps in one parallel block of the float32 kernel.
const convSteps = 64

// conv32 is the fast float32 kernel. Work is cut into (sequence, block of
// convSteps time steps) pieces; inner loops run over contiguous channels
// (mulAdd, eight lanes per instruction) with the weights transposed to
// (K, ch). The forward keeps σ(c), so the backward computes no exponential;
// it recomputes c itself (K multiply-adds per element) rather than keep it.
type conv32 struct {
	convGeom
	wt   []float32 // (K, ch) w transposed, refreshed by every forward and backward
	sig  []float32 // (batch·L, ch) σ(c) of the last forward, with silu
	ring []float32 // (workers, K, ch) the last K rows of dc in the backward sweep
	part []float32 // (pieces, (K+1)·ch) per-piece sums of dw (K, ch) and db (ch)
	sum  []float32 // ((K+1)·ch) their sum over pieces, in piece order
}

func newConv32(g convGeom) *conv32 {
	k := &conv32{convGeom: g, wt: make([]float32, g.k*g.ch)}
	if g.silu {
		k.sig = make([]float32, g.batch*g.l*g.ch)
	}
	return k
}

func (k *conv32) pieces() int { return k.batch * ((k.l + convSteps - 1) / convSteps) }

// piece returns the sequence and the time range of piece p.
func (k *conv32) piece(p int) (seq, t0, t1 int) {
	per := (k.l + convSteps - 1) / convSteps
	seq, t0 = p/per, p%per*convSteps
	return seq, t0, min(k.l, t0+convSteps)
}

func (k *conv32) transpose(w []float32) {
	for d := 0; d < k.ch; d++ {
		for j := 0; j < k.k; j++ {
			k.wt[j*k.ch+d] = w[d*k.k+j]
		}
	}
}

// pre writes c at sequence seq, time t into c (ch).
func (k *conv32) pre(in [][]float32, seq, t int, c []float32) {
	x, ch := in[0], k.ch
	if k.bias {
		copy(c, in[2])
	} else {
		clear(c)
	}
	for j := max(0, k.k-1-t); j < k.k; j++ {
		mulAdd(c, k.wt[j*ch:], x[(seq*k.l+t-(k.k-1)+j)*ch:])
	}
}

func (k *conv32) forward(in [][]float32, y []float32) error {
	k.transpose(in[1])
	parallel.For(k.pieces(), 1, func(_, p, _ int) {
		seq, t0, t1 := k.piece(p)
		for t := t0; t < t1; t++ {
			row := (seq*k.l + t) * k.ch
			c := y[row:][:k.ch]
			k.pre(in, seq, t, c)
			if k.silu {
				s := k.sig[row:][:k.ch]
				math32.ExpAffine(s, c, -1, 0)
				for d, v := range c {
					s[d] = 1 / (1 + s[d])
					c[d] = v * s[d]
				}
			}
		}
	})
	return nil
}

// backward: with dc_t = dy_t·σ(c_t)·(1 + c_t·(1 − σ(c_t))) (the derivative of
// c·σ(c); dc = dy without silu),
//
//	db_d     = Σ_{b,t} dc[b,t,d]
//	dw[d,k]  = Σ_{b,t} dc[b,t,d]·x[b, t−(K−1)+k, d]
//	dx[b,s,d] = Σ_k dc[b, s+(K−1)−k, d]·w[d,k]   (terms with s+(K−1)−k ≥ L dropped)
//
// Each piece sweeps its steps s upward keeping dc of steps s … s+K−1 in a ring
// of K rows, so dc of a step is computed once per piece (K−1 steps past the
// piece's end are recomputed by the next piece). σ(c) comes from the forward.
func (k *conv32) backward(in [][]float32, dy []float32, din [][]float32) error {
	x, dx, ch, kw := in[0], din[0], k.ch, k.k
	k.transpose(in[1])
	np, stride := k.pieces(), (kw+1)*ch
	k.ring = grow(k.ring, parallel.Workers(np, 0)*kw*ch)
	k.part = grow(k.part, np*stride)
	parallel.For(np, 1, func(wk, p, _ int) {
		seq, t0, t1 := k.piece(p)
		ring := k.ring[wk*kw*ch:][:kw*ch]
		part := k.part[p*stride:][:stride]
		clear(part)
		dw, db := part[:kw*ch], part[kw*ch:]
		// dcAt fills the ring row of step t with dc_t and, for steps of this
		// piece, adds its terms to dw and db.
		dcAt := func(t int) {
			row := (seq*k.l + t) * ch
			dc, g := ring[t%kw*ch:][:ch], dy[row:][:ch]
			if k.silu {
				k.pre(in, seq, t, dc)
				sg := k.sig[row:][:ch]
				for d, c := range dc {
					s := sg[d]
					dc[d] = g[d] * s * (1 + c*(1-s))
				}
			} else {
				copy(dc, g)
			}
			if t >= t1 {
				return
			}
			for d, v := range dc {
				db[d] += v
			}
			for j := max(0, kw-1-t); j < kw; j++ {
				mulAdd(dw[j*ch:][:ch], dc, x[(seq*k.l+t-(kw-1)+j)*ch:])
			}
		}
		for t := t0; t < min(k.l, t0+kw-1); t++ {
			dcAt(t)
		}
		for s := t0; s < t1; s++ {
			if s+kw-1 < k.l {
				dcAt(s + kw - 1)
			}
			out := dx[(seq*k.l+s)*ch:][:ch]
			clear(out)
			for j := max(0, s+kw-k.l); j < kw; j++ {
				mulAdd(out, ring[(s+kw-1-j)%kw*ch:], k.wt[j*ch:])
			}
		}
	})
	k.sum = grow(k.sum, stride)
	sumBlocks(k.sum, k.part)
	for d := 0; d < ch; d++ {
		for j := 0; j < kw; j++ {
			din[1][d*kw+j] = k.sum[j*ch+d]
		}
	}
	if k.bias {
		copy(din[2], k.sum[kw*ch:])
	}
	return nil
}

// convRef is the plain float64 reference kernel: the definitions above, one
// element at a time. It recomputes c in backward like the fast kernel.
type convRef struct{ convGeom }

func (k *convRef) pre(in [][]float64, seq, t, d int) float64 {
	c := 0.0
	if k.bias {
		c = in[2][d]
	}
	for j := 0; j < k.k; j++ {
		if s := t - (k.k - 1) + j; s >= 0 {
			c += in[1][d*k.k+j] * in[0][(seq*k.l+s)*k.ch+d]
		}
	}
	return c
}

func (k *convRef) forward(in [][]float64, y []float64) error {
	for seq := 0; seq < k.batch; seq++ {
		for t := 0; t < k.l; t++ {
			for d := 0; d < k.ch; d++ {
				c := k.pre(in, seq, t, d)
				if k.silu {
					c /= 1 + math.Exp(-c)
				}
				y[(seq*k.l+t)*k.ch+d] = c
			}
		}
	}
	return nil
}

func (k *convRef) backward(in [][]float64, dy []float64, din [][]float64) error {
	dx, dw := din[0], din[1]
	clear(dx)
	clear(dw)
	if k.bias {
		clear(din[2])
	}
	for seq := 0; seq < k.batch; seq++ {
		for t := 0; t < k.l; t++ {
			for d := 0; d < k.ch; d++ {
				dc := dy[(seq*k.l+t)*k.ch+d]
				if k.silu {
					c := k.pre(in, seq, t, d)
					s := 1 / (1 + math.Exp(-c))
					dc *= s * (1 + c*(1-s))
				}
				if k.bias {
					din[2][d] += dc
				}
				for j := 0; j < k.k; j++ {
					if s := t - (k.k - 1) + j; s >= 0 {
						dw[d*k.k+j] += dc * in[0][(seq*k.l+s)*k.ch+d]
						dx[(seq*k.l+s)*k.ch+d] += dc * in[1][d*k.k+j]
					}
				}
			}
		}
	}
	return nil
}
