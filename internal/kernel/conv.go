package kernel

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/parallel"
)

// Conv1d is the depthwise causal convolution over time of the Mamba block.
// x is (Batch·Len, Channels) token-major, w is (Channels, Width), bias is
// (Channels) with Bias, and
//
//	c[b,t,d] = bias_d + Σ_{k<K} w[d,k]·x[b, t−(K−1)+k, d]
//	y = silu(c) = c·σ(c) with SiLU, else y = c
//
// with K = Width. w[d,K−1] multiplies the current step, as PyTorch's Conv1d
// (a cross-correlation) with K−1 steps of left padding. Sequences never see
// each other. Before t = 0, x is 0, or with State the rows of the last input,
// state (Batch·(K−1), Channels): x[b, −(K−1)+j] = state[b·(K−1)+j] (a decoder
// continuing a sequence).
//
// With Resets (packed documents), a document's steps read nothing before its
// first step: x[b, s] counts as 0 in c[b,t] when a document starts at a step
// in (s, t] (for s < 0, the state: in [0, t]).
type Conv1d struct {
	Batch, Len, Channels, Width int
	Bias, SiLU, State           bool
	Resets                      *Resets // document starts, (Batch·Len); nil: one document per sequence
}

func (s Conv1d) String() string {
	return fmt.Sprintf("Conv1d{batch=%d,len=%d,channels=%d,width=%d,bias=%t,silu=%t,state=%t,resets=%t}",
		s.Batch, s.Len, s.Channels, s.Width, s.Bias, s.SiLU, s.State, s.Resets != nil)
}

func (s Conv1d) Inputs() [][]int {
	in := [][]int{{s.Batch * s.Len, s.Channels}, {s.Channels, s.Width}}
	if s.Bias {
		in = append(in, []int{s.Channels})
	}
	if s.State {
		in = append(in, []int{s.Batch * (s.Width - 1), s.Channels})
	}
	return in
}

func (s Conv1d) Output() []int { return []int{s.Batch * s.Len, s.Channels} }

func (s Conv1d) Validate() error {
	if s.State && s.Width < 2 {
		return fmt.Errorf("kernel: Conv1d: a state needs width ≥ 2, got %d", s.Width)
	}
	if err := s.Resets.Fits("kernel: Conv1d", s.Batch, s.Len); err != nil {
		return err
	}
	return validate(s, "batch,len,channels,width", s.Batch, s.Len, s.Channels, s.Width)
}

// inputs returns x, w, bias (or nil) and state (or nil) of in.
func (s Conv1d) split32(in [][]float32) (x, w, b, st []float32) {
	x, w, i := in[0], in[1], 2
	if s.Bias {
		b, i = in[i], i+1
	}
	if s.State {
		st = in[i]
	}
	return
}

// ConvTranspose writes wt (width, channels) = w (channels, width) transposed:
// the layout the float32 kernel and ConvStep multiply with, one contiguous
// row of channels per tap.
func ConvTranspose(wt, w []float32, channels, width int) {
	for d := 0; d < channels; d++ {
		for j := 0; j < width; j++ {
			wt[j*channels+d] = w[d*width+j]
		}
	}
}

// ConvStep advances channels [lo, hi) of one sequence by one input row x
// (channels): y = silu(bias + Σ_{j<K−1} wt[j]⊙state[j] + wt[K−1]⊙x) (no SiLU
// without silu), then state moves up one row and takes x as its last. state
// is (K−1, channels), oldest row first; wt is ConvTranspose's layout; bias
// may be nil. It computes what the Conv1d kernel computes for that row.
func ConvStep(y, x, state, wt, bias []float32, channels, width, lo, hi int, silu bool) {
	c := y[lo:hi]
	if bias != nil {
		copy(c, bias[lo:hi])
	} else {
		clear(c)
	}
	for j := 0; j < width-1; j++ {
		MulAdd(c, wt[j*channels+lo:], state[j*channels+lo:])
	}
	MulAdd(c, wt[(width-1)*channels+lo:], x[lo:])
	for j := 0; j+1 < width-1; j++ {
		copy(state[j*channels+lo:j*channels+hi], state[(j+1)*channels+lo:])
	}
	if width > 1 {
		copy(state[(width-2)*channels+lo:(width-2)*channels+hi], x[lo:hi])
	}
	if silu {
		math32.SiLURow(c, c)
	}
}

// convSteps is the number of time steps in one parallel piece of the float32 kernel.
const convSteps = 64

func (s Conv1d) CPUKernel() Kernel[[]float32] {
	k := &conv32{s: s, wt: make([]float32, s.Width*s.Channels), held: Hold(s.Resets)}
	if s.Resets != nil {
		k.lo = make([]int32, s.Batch*s.Len)
	}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}

// conv32 is the float32 kernel. Work is cut into (sequence, block of
// convSteps time steps) pieces; inner loops run over contiguous channels
// (MulAdd, math32's vector SiLU rows) with the weights transposed to (K,
// channels). The forward keeps nothing: the backward recomputes c (K
// multiply-adds per element) and silu'(c), cheaper than writing σ(c) out and
// reading it back. With document starts, lo bounds the taps of every step.
type conv32 struct {
	s    Conv1d
	held HeldResets
	lo   []int32   // (batch·L) first step step t may read (−(K−1) before any start); unused without starts
	wt   []float32 // (K, ch) w transposed, refreshed by every forward and backward
	ring []float32 // (workers, K+1, ch) the last K rows of dc in the backward sweep, and a row of silu'(c)
	part []float32 // (pieces, (K+1)·ch) per-piece sums of dw (K, ch) and db (ch)
	sum  []float32 // ((K+1)·ch) their sum over pieces, in piece order
	sums partSum

	job      parallel.Job
	fwd, bwd items
	in       [][]float32
	y, dy    []float32
	din      [][]float32
}

func (k *conv32) pieces() int { return k.s.Batch * blocks(k.s.Len, convSteps) }

// piece returns the sequence and the time range of piece p.
func (k *conv32) piece(p int) (seq, t0, t1 int) {
	per := blocks(k.s.Len, convSteps)
	seq, t0 = p/per, p%per*convSteps
	return seq, t0, min(k.s.Len, t0+convSteps)
}

// src returns the input row at time t of sequence seq (t < 0 reads the
// state), or nil for a zero row.
func (k *conv32) src(x, st []float32, seq, t int) []float32 {
	ch := k.s.Channels
	if t >= 0 {
		return x[(seq*k.s.Len+t)*ch:][:ch]
	}
	if st != nil {
		return st[(seq*(k.s.Width-1)+k.s.Width-1+t)*ch:][:ch]
	}
	return nil
}

// docStarts writes lo[b·L+t], the first step that step t of sequence b may
// read: the last document start at or before t, or −(K−1) (the state) when
// no document starts in [0, t].
func docStarts(lo []int32, flags []uint8, batch, length, width int) {
	for b := 0; b < batch; b++ {
		first := int32(-(width - 1))
		for t := 0; t < length; t++ {
			if flags[b*length+t] != 0 {
				first = int32(t)
			}
			lo[b*length+t] = first
		}
	}
}

// tap0 returns the first tap j that step t of sequence seq uses: taps below
// it read steps of an earlier document.
func (k *conv32) tap0(seq, t int) int {
	if k.held.Flags() == nil {
		return 0
	}
	return max(0, int(k.lo[seq*k.s.Len+t])-t+k.s.Width-1)
}

// pre writes c at sequence seq, time t into c (ch): the same sums, in the
// same order, as ConvStep.
func (k *conv32) pre(x, b, st []float32, seq, t int, c []float32) {
	if b != nil {
		copy(c, b)
	} else {
		clear(c)
	}
	for j := k.tap0(seq, t); j < k.s.Width; j++ {
		if r := k.src(x, st, seq, t-(k.s.Width-1)+j); r != nil {
			MulAdd(c, k.wt[j*k.s.Channels:], r)
		}
	}
}

func (k *conv32) Forward(in [][]float32, y []float32) {
	_, w, _, _ := k.s.split32(in)
	ConvTranspose(k.wt, w, k.s.Channels, k.s.Width)
	if k.held.Take(); k.held.Flags() != nil {
		docStarts(k.lo, k.held.Flags(), k.s.Batch, k.s.Len, k.s.Width)
	}
	k.in, k.y = in, y
	run(&k.job, k.fwd, k.pieces())
	k.in, k.y = nil, nil
}

func (k *conv32) forwardItem(_, p int) {
	x, _, b, st := k.s.split32(k.in)
	ch := k.s.Channels
	seq, t0, t1 := k.piece(p)
	for t := t0; t < t1; t++ {
		row := (seq*k.s.Len + t) * ch
		c := k.y[row:][:ch]
		k.pre(x, b, st, seq, t, c)
		if k.s.SiLU {
			math32.SiLURow(c, c)
		}
	}
}

// Backward: with dc_t = dy_t·σ(c_t)·(1 + c_t·(1 − σ(c_t))) (the derivative of
// c·σ(c); dc = dy without SiLU),
//
//	db_d      = Σ_{b,t} dc[b,t,d]
//	dw[d,k]   = Σ_{b,t} dc[b,t,d]·x[b, t−(K−1)+k, d]     (state rows for times < 0)
//	dx[b,s,d] = Σ_k dc[b, s+(K−1)−k, d]·w[d,k]           (terms with s+(K−1)−k ≥ L dropped)
//
// and dstate is dx at the times −(K−1) … −1. Across a document start the
// forward's term is absent, so is its gradient term: a tap j of step t that
// the forward skipped (j < tap0(t)) adds nothing to dw, dx or dstate. Each piece sweeps its steps s
// upward keeping dc of steps s … s+K−1 in a ring of K rows, so dc of a step
// is computed once per piece (K−1 steps past the piece's end are recomputed
// by the next piece).
func (k *conv32) Backward(in [][]float32, dy []float32, din [][]float32) {
	_, w, _, _ := k.s.split32(in)
	ch, kw := k.s.Channels, k.s.Width
	ConvTranspose(k.wt, w, ch, kw)
	np, stride := k.pieces(), (kw+1)*ch
	k.ring = grow(k.ring, parallel.Workers(np, 0)*(kw+1)*ch)
	k.part = grow(k.part, np*stride)
	k.in, k.dy, k.din = in, dy, din
	run(&k.job, k.bwd, np)
	k.sum = grow(k.sum, stride)
	k.sums.run(k.sum, k.part)
	if din[1] != nil {
		for d := 0; d < ch; d++ {
			for j := 0; j < kw; j++ {
				din[1][d*kw+j] = k.sum[j*ch+d]
			}
		}
	}
	i := 2
	if k.s.Bias {
		if din[i] != nil {
			copy(din[i], k.sum[kw*ch:])
		}
		i++
	}
	if k.s.State && din[i] != nil {
		k.stateGrad(din[i])
	}
	k.in, k.dy, k.din = nil, nil, nil
}

// dc writes dc_t of sequence seq into dst (ch), using tmp (ch) for silu'(c).
func (k *conv32) dc(seq, t int, dst, tmp []float32) {
	x, _, b, st := k.s.split32(k.in)
	ch := k.s.Channels
	g := k.dy[(seq*k.s.Len+t)*ch:][:ch]
	if !k.s.SiLU {
		copy(dst, g)
		return
	}
	k.pre(x, b, st, seq, t, dst)
	math32.SiLUGradRow(dst, tmp, dst)
	for d, v := range tmp {
		dst[d] = g[d] * v
	}
}

func (k *conv32) backwardItem(wk, p int) {
	x, _, _, st := k.s.split32(k.in)
	dx := k.din[0]
	ch, kw, L := k.s.Channels, k.s.Width, k.s.Len
	seq, t0, t1 := k.piece(p)
	ring := k.ring[wk*(kw+1)*ch:][:kw*ch]
	tmp := k.ring[(wk*(kw+1)+kw)*ch:][:ch]
	part := k.part[p*(kw+1)*ch:][:(kw+1)*ch]
	clear(part)
	dw, db := part[:kw*ch], part[kw*ch:]
	// dcAt fills the ring row of step t with dc_t and, for steps of this
	// piece, adds its terms to dw and db.
	dcAt := func(t int) {
		dc := ring[t%kw*ch:][:ch]
		k.dc(seq, t, dc, tmp)
		if t >= t1 {
			return
		}
		for d, v := range dc {
			db[d] += v
		}
		for j := k.tap0(seq, t); j < kw; j++ {
			if r := k.src(x, st, seq, t-(kw-1)+j); r != nil {
				MulAdd(dw[j*ch:][:ch], dc, r)
			}
		}
	}
	for t := t0; t < min(L, t0+kw-1); t++ {
		dcAt(t)
	}
	for s := t0; s < t1; s++ {
		if s+kw-1 < L {
			dcAt(s + kw - 1)
		}
		if dx == nil {
			continue
		}
		out := dx[(seq*L+s)*ch:][:ch]
		clear(out)
		for j := max(0, s+kw-L); j < kw; j++ {
			if t := s + kw - 1 - j; j >= k.tap0(seq, t) {
				MulAdd(out, ring[t%kw*ch:], k.wt[j*ch:])
			}
		}
	}
}

// stateGrad writes dstate[b, K−1+s] = Σ_j dc[b, s+(K−1)−j]·w_j for s < 0,
// recomputing the dc of the first K−1 steps of every sequence.
func (k *conv32) stateGrad(dst []float32) {
	ch, kw := k.s.Channels, k.s.Width
	clear(dst)
	dc, tmp := k.sum[:ch], k.ring[:ch] // free again: the weight gradients were copied out, the sweep is over
	for seq := 0; seq < k.s.Batch; seq++ {
		for t := 0; t < min(k.s.Len, kw-1); t++ {
			k.dc(seq, t, dc, tmp)
			for j := k.tap0(seq, t); j < kw; j++ {
				if s := t - (kw - 1) + j; s < 0 {
					MulAdd(dst[(seq*(kw-1)+kw-1+s)*ch:][:ch], dc, k.wt[j*ch:])
				}
			}
		}
	}
}

func (s Conv1d) ReferenceKernel() Kernel[[]float64] {
	return &convRef{s: s, held: Hold(s.Resets)}
}

// convRef is the float64 reference: the definitions above, one element at a
// time. It recomputes c in backward like the fast kernel.
type convRef struct {
	s    Conv1d
	held HeldResets // the document starts of the last forward
}

// sees reports whether step t of sequence seq reads step s (s ≤ t; s < 0 is
// the state): no document starts in (s, t], nor at 0 when s < 0.
func (k *convRef) sees(seq, s, t int) bool {
	for u := max(s+1, 0); u <= t && k.held.Flags() != nil; u++ {
		if k.held.Flags()[seq*k.s.Len+u] != 0 {
			return false
		}
	}
	return true
}

func (k *convRef) split(in [][]float64) (x, w, b, st []float64) {
	x, w, i := in[0], in[1], 2
	if k.s.Bias {
		b, i = in[i], i+1
	}
	if k.s.State {
		st = in[i]
	}
	return
}

// at returns the index of x[seq, t, d] in x (t ≥ 0) or in the state (t < 0),
// and whether it is in x, as read by step out; ok is false for a zero (no
// state, or an earlier document).
func (k *convRef) at(seq, t, out, d int) (i int, inX, ok bool) {
	ch, kw := k.s.Channels, k.s.Width
	if !k.sees(seq, t, out) {
		return 0, false, false
	}
	if t >= 0 {
		return (seq*k.s.Len+t)*ch + d, true, true
	}
	if k.s.State {
		return (seq*(kw-1)+kw-1+t)*ch + d, false, true
	}
	return 0, false, false
}

func (k *convRef) pre(in [][]float64, seq, t, d int) float64 {
	x, w, b, st := k.split(in)
	c := 0.0
	if b != nil {
		c = b[d]
	}
	for j := 0; j < k.s.Width; j++ {
		if i, inX, ok := k.at(seq, t-(k.s.Width-1)+j, t, d); ok {
			v := st
			if inX {
				v = x
			}
			c += w[d*k.s.Width+j] * v[i]
		}
	}
	return c
}

func (k *convRef) Forward(in [][]float64, y []float64) {
	k.held.Take()
	for seq := 0; seq < k.s.Batch; seq++ {
		for t := 0; t < k.s.Len; t++ {
			for d := 0; d < k.s.Channels; d++ {
				c := k.pre(in, seq, t, d)
				if k.s.SiLU {
					c /= 1 + math.Exp(-c)
				}
				y[(seq*k.s.Len+t)*k.s.Channels+d] = c
			}
		}
	}
}

func (k *convRef) Backward(in [][]float64, dy []float64, din [][]float64) {
	x, w, _, st := k.split(in)
	// Accumulate into zeroed full gradients, then hand out those asked for.
	dx, dw := make([]float64, len(x)), make([]float64, len(w))
	db, dst := make([]float64, k.s.Channels), make([]float64, len(st))
	for seq := 0; seq < k.s.Batch; seq++ {
		for t := 0; t < k.s.Len; t++ {
			for d := 0; d < k.s.Channels; d++ {
				dc := dy[(seq*k.s.Len+t)*k.s.Channels+d]
				if k.s.SiLU {
					c := k.pre(in, seq, t, d)
					s := 1 / (1 + math.Exp(-c))
					dc *= s * (1 + c*(1-s))
				}
				db[d] += dc
				for j := 0; j < k.s.Width; j++ {
					i, inX, ok := k.at(seq, t-(k.s.Width-1)+j, t, d)
					switch {
					case !ok:
					case inX:
						dw[d*k.s.Width+j] += dc * x[i]
						dx[i] += dc * w[d*k.s.Width+j]
					default:
						dw[d*k.s.Width+j] += dc * st[i]
						dst[i] += dc * w[d*k.s.Width+j]
					}
				}
			}
		}
	}
	out := [][]float64{dx, dw}
	if k.s.Bias {
		out = append(out, db)
	}
	if k.s.State {
		out = append(out, dst)
	}
	for i, g := range out {
		if din[i] != nil {
			copy(din[i], g)
		}
	}
}

// ConvState writes next (Batch·(Width−1), Channels), the state after x
// (Batch·Len, Channels): the last Width−1 inputs of each sequence, oldest
// first, taken from state (the inputs before x) where x is shorter.
func ConvState(next, state, x []float32, batch, length, channels, width int) {
	k := width - 1
	for b := 0; b < batch; b++ {
		for j := 0; j < k; j++ {
			dst := next[(b*k+j)*channels:][:channels]
			if t := length - k + j; t >= 0 {
				copy(dst, x[(b*length+t)*channels:])
			} else {
				copy(dst, state[(b*k+k+t)*channels:])
			}
		}
	}
}
