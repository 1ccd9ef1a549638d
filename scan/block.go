package scan

import (
	"slices"

	"github.com/mambago/mamba/internal/math32"
)

// Work on one chunk of timesteps for the channels [c0, c1) of one batch row. The per-token
// scalars (Δ, dΔ/dδ, Δ·u, silu(z), ĝ) are computed into (time, channel) tiles, reading the
// token-major inputs row by row; the (time, state) loops of kernel.go read and write a
// channel's column of the tiles in place (stride = the tile's width), and the result tiles are
// written out row by row.

// Tile contents for prepare.
const (
	tilesForward  = iota // Δ, dΔ/dδ, Δ·u
	tilesOut             // and silu(z) (when there is a gate)
	tilesAdjoint         // and ĝ = g·silu(z)
	tilesBackward        // and ĝ and the dz factor g·silu'(z)
)

// prepare fills the tiles for steps [t0, t1) and channels [c0, c1) of batch b. Rows are copied
// in, then softplus and SiLU run over the whole tile at once, so that they stay vectorised
// however few channels there are.
func (f *Fast) prepare(sc *scratch, b, c0, c1, t0, t1, what int) {
	s := f.shape
	w := c1 - c0
	mw := (t1 - t0) * w
	gate := what != tilesForward && f.in.Z != nil
	var bias []float32
	if f.in.DeltaBias != nil {
		bias = f.in.DeltaBias[c0:c1]
	}
	for t := t0; t < t1; t++ {
		r, i0 := (t-t0)*w, (b*s.Len+t)*s.Channels+c0
		biasRow(sc.tdt[r:r+w], f.in.Delta[i0:i0+w], bias)
		if gate {
			copy(sc.tsg[r:r+w], f.in.Z[i0:i0+w])
		}
	}
	deltaRow(f.soft, sc.tdt[:mw], sc.tddt[:mw])
	switch {
	case !gate:
	case what == tilesOut:
		math32.SiLURow(sc.tsg[:mw], sc.tsg[:mw])
	default:
		math32.SiLUGradRow(sc.tsg[:mw], sc.tzf[:mw], sc.tsg[:mw])
	}
	for t := t0; t < t1; t++ {
		r, i0 := (t-t0)*w, (b*s.Len+t)*s.Channels+c0
		mulRow(sc.tdu[r:r+w], sc.tdt[r:r+w], f.in.U[i0:i0+w])
		if what == tilesAdjoint || what == tilesBackward {
			gh, g := sc.tgh[r:r+w], f.dout[i0:i0+w]
			if !gate {
				copy(gh, g)
				continue
			}
			mulRow(gh, g, sc.tsg[r:r+w])
			mulRow(sc.tzf[r:r+w], sc.tzf[r:r+w], g)
		}
	}
}

// The per-token rows shared by the chunked kernel and Stepper, so that both compute the same bits.

// biasRow sets dt = δ + bias (δ alone when bias is nil).
func biasRow(dt, delta, bias []float32) {
	copy(dt, delta)
	if bias != nil {
		bias = bias[:len(dt)]
		for j := range dt {
			dt[j] += bias[j]
		}
	}
}

// deltaRow replaces dt = δ + bias by Δ and sets ddt to dΔ/dδ: softplus and σ with soft, else
// Δ = δ + bias and 1.
func deltaRow(soft bool, dt, ddt []float32) {
	if soft {
		math32.SoftplusRow(dt, ddt, dt)
		return
	}
	for j := range ddt[:len(dt)] {
		ddt[j] = 1
	}
}

// mulRow sets dst = a⊙b (dst may be a).
func mulRow(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for j := range dst {
		dst[j] = a[j] * b[j]
	}
}

// outRow writes out = (y + D⊙u)⊙silu, without the gate when silu is nil.
func outRow(out, y, D, u, silu []float32) {
	y, D, u = y[:len(out)], D[:len(out)], u[:len(out)]
	for j := range out {
		out[j] = y[j] + D[j]*u[j]
	}
	if silu != nil {
		silu = silu[:len(out)]
		for j := range out {
			out[j] *= silu[j]
		}
	}
}

// chunkForward advances the states h ((c1−c0, State)) of channels [c0, c1) of batch b over
// chunk k and then, with emit, writes out, else adds each channel's ΣΔ to sc.sum (time mode):
//
//	h_t = Ā_t⊙h_{t−1} + Δ_t·u_t·B_t,  y_t = C_t·h_t + D·u_t,  out_t = y_t·silu(z_t).
func (f *Fast) chunkForward(sc *scratch, b, c0, c1, k int, h []float32, emit bool) {
	s := f.shape
	N, w := s.State, c1-c0
	t0, t1 := f.span(k)
	m := t1 - t0
	what := tilesForward
	if emit {
		what = tilesOut
	}
	f.prepare(sc, b, c0, c1, t0, t1, what)
	B, C := f.rows(b, t0, t1)
	cuts, first := f.pieces(sc, b, t0, t1)
	for c := c0; c < c1; c++ {
		j := c - c0
		hc := h[j*N:][:N]
		sc.recompute(cuts, first, hc, f.in.A[c*N:][:N], B, C, j, w)
		copy(hc, sc.hs[(m-1)*N:m*N])
		if !emit {
			for r := range m {
				sc.sum[j] += sc.tdt[r*w+j]
			}
		}
	}
	if !emit {
		return
	}
	D := sc.skip[:w]
	copyOrZero(D, f.in.D, c0)
	for t := t0; t < t1; t++ {
		r, i0 := (t-t0)*w, (b*s.Len+t)*s.Channels+c0
		var silu []float32
		if f.in.Z != nil {
			silu = sc.tsg[r : r+w]
		}
		outRow(f.out[i0:i0+w], sc.ty[r:r+w], D, f.in.U[i0:i0+w], silu)
	}
}

// chunkAdjoint (time mode) runs the adjoint of channels [c0, c1) of batch b backwards over
// chunk k without gradients, μ ← Ā_t⊙(C_t·ĝ_t + μ) with mu ((c1−c0, State)), and adds each
// channel's ΣΔ to sc.sum.
func (f *Fast) chunkAdjoint(sc *scratch, b, c0, c1, k int, mu []float32) {
	s := f.shape
	N, w := s.State, c1-c0
	t0, t1 := f.span(k)
	m := t1 - t0
	f.prepare(sc, b, c0, c1, t0, t1, tilesAdjoint)
	_, C := f.rows(b, t0, t1)
	cuts, first := f.pieces(sc, b, t0, t1)
	for c := c0; c < c1; c++ {
		j := c - c0
		sc.adjoint(cuts, first, mu[j*N:][:N], f.in.A[c*N:][:N], C, j, w)
		for r := range m {
			sc.sum[j] += sc.tdt[r*w+j]
		}
	}
}

// chunkBackward runs the backward of chunk k for channels [c0, c1) of batch b. It adds the
// channels' dB and dC rows into db and dc ((chunk, State) each), carries the adjoint in f.mu and sums
// dA, dD, d(DeltaBias) into the accumulators of segment seg. Per channel it recomputes Ā_t and
// h_t over the chunk from the saved state (exp once per element), then walks the chunk
// backwards (scanReverse), with μ = Ā_{t+1}⊙λ_{t+1} = d(loss)/d(h_t) through later steps:
//
//	λ_t = C_t·ĝ_t + μ,  μ ← Ā_t⊙λ_t
//	dC_t += ĝ_t·h_t,  dB_t += λ_t·Δ_t·u_t
//	du_t = D·ĝ_t + Δ_t·Σ_n λ_t·B_t
//	dΔ_t = u_t·Σ_n λ_t·B_t + Σ_n A·λ_t·Ā_t·h_{t−1}
//	dA += Δ_t·λ_t·Ā_t·h_{t−1},  dδ_t = dΔ_t·dΔ/dδ,  d(DeltaBias) += dδ_t,  dD += ĝ_t·u_t
func (f *Fast) chunkBackward(sc *scratch, b, c0, c1, k int, db, dc []float32, seg int) {
	s := f.shape
	N, w := s.State, c1-c0
	t0, t1 := f.span(k)
	m := t1 - t0
	f.prepare(sc, b, c0, c1, t0, t1, tilesBackward)
	B, C := f.rows(b, t0, t1)
	db, dc = db[:m*N], dc[:m*N]
	cuts, first := f.pieces(sc, b, t0, t1)
	for c := c0; c < c1; c++ {
		j, acc := c-c0, f.acc(b, seg, c)
		A, hstart := f.in.A[c*N:][:N], f.savedAt(b, k, c)
		sc.recompute(cuts, first, hstart, A, B, C, j, w)
		sc.reverse(cuts, first, f.mu[acc*N:][:N], hstart, A, B, C, db, dc, f.dA[acc*N:][:N], j, w)
	}
	f.backwardRows(sc, b, c0, c1, t0, t1, seg)
}

// prefetch asks the cache for the token rows of channels [c0, c1) of batch b that chunk k will
// read or write (δ, u, z, and out; with grad dout, du, dδ and dz instead of out), while the
// current chunk computes: the rows are strided pieces of the token rows, which the hardware
// prefetcher does not follow.
func (f *Fast) prefetch(b, c0, c1, k int, grad bool) {
	s := f.shape
	t0, t1 := f.span(k)
	i0 := (b*s.Len+t0)*s.Channels + c0
	rows := [...][]float32{f.in.Delta, f.in.U, f.in.Z, f.out, nil, nil, nil}
	if grad {
		rows[3], rows[4], rows[5], rows[6] = f.dout, f.g.U, f.g.Delta, f.g.Z
	}
	for _, x := range rows {
		if x != nil {
			prefetchRows(&x[i0], t1-t0, s.Channels, c1-c0)
		}
	}
}

// pieces returns the runs of steps [t0, t1) of batch row b that no document start interrupts,
// as the offsets from t0 of their first steps followed by t1 − t0, and whether a document
// starts at t0. Every run but the first starts a document, and so does the first when first is
// true: its entering state (and the adjoint it passes on) is zero.
func (f *Fast) pieces(sc *scratch, b, t0, t1 int) (cuts []int, first bool) {
	cuts = append(sc.cuts[:0], 0)
	if f.in.Resets != nil {
		row := f.in.Resets[b*f.shape.Len:][t0:t1]
		first = row[0] != 0
		for t, r := range row[1:] {
			if r != 0 {
				cuts = append(cuts, t+1)
			}
		}
	}
	return append(cuts, t1-t0), first
}

// recompute runs scanRecompute for the channel in column j of the tiles (w wide) over the
// pieces of a chunk, from hstart and from zero where a document starts, keeping every Ā_t and
// h_t in sc.abar and sc.hs. B and C are the chunk's rows.
func (sc *scratch) recompute(cuts []int, first bool, hstart, A, B, C []float32, j, w int) {
	N := len(A)
	for i := range len(cuts) - 1 {
		p0, p1 := cuts[i], cuts[i+1]
		h := hstart
		if i > 0 || first {
			h = sc.zero
		}
		o := j + p0*w
		scanRecompute(h, A, B[p0*N:], C[p0*N:], sc.tdt[o:], sc.tdu[o:], sc.ty[o:], sc.abar[p0*N:p1*N],
			sc.hs[p0*N:p1*N], p1-p0, w)
	}
}

// reverse runs scanReverse over the pieces of a chunk, last first, after recompute. The
// adjoint mu does not cross a document start: it is zero entering the piece before.
func (sc *scratch) reverse(cuts []int, first bool, mu, hstart, A, B, C, db, dc, dA []float32, j, w int) {
	N := len(A)
	for i := len(cuts) - 2; i >= 0; i-- {
		p0, p1 := cuts[i], cuts[i+1]
		fresh := i > 0 || first
		h := hstart
		if fresh {
			h = sc.zero
		}
		o := j + p0*w
		scanReverse(mu, A, B[p0*N:], C[p0*N:], sc.abar[p0*N:p1*N], sc.hs[p0*N:p1*N], h, db[p0*N:], dc[p0*N:], dA,
			sc.tdt[o:], sc.tdu[o:], sc.tgh[o:], sc.ts1[o:], sc.ts2[o:], p1-p0, w)
		if fresh {
			clear(mu)
		}
	}
}

// adjoint runs scanAdjoint over the pieces of a chunk, last first, the adjoint zeroed where a
// document starts.
func (sc *scratch) adjoint(cuts []int, first bool, mu, A, C []float32, j, w int) {
	N := len(A)
	for i := len(cuts) - 2; i >= 0; i-- {
		p0, p1 := cuts[i], cuts[i+1]
		o := j + p0*w
		scanAdjoint(mu, A, C[p0*N:], sc.tdt[o:], sc.tgh[o:], sc.abar[p0*N:p1*N], p1-p0, w)
		if i > 0 || first {
			clear(mu)
		}
	}
}

// backwardRows finishes chunkBackward token row by token row, last step first: it writes the
// rows of du, dδ and dz and adds dD and d(DeltaBias) of the chunk into the accumulators of
// segment seg, each channel's terms summed from the last step to the first. Rows of a gradient
// the caller did not ask for go to a scratch row.
func (f *Fast) backwardRows(sc *scratch, b, c0, c1, t0, t1, seg int) {
	s := f.shape
	w := c1 - c0
	D, sumD, sumBias := sc.skip[:w], sc.sumD[:w], sc.sumBias[:w]
	copyOrZero(D, f.in.D, c0)
	clear(sumD)
	clear(sumBias)
	for t := t1 - 1; t >= t0; t-- {
		r, i0 := (t-t0)*w, (b*s.Len+t)*s.Channels+c0
		u := f.in.U[i0:][:w]
		duDeltaRow(gradOrSink(f.g.U, sc.sink, i0, w), gradOrSink(f.g.Delta, sc.sink, i0, w), sumD, sumBias, u, D,
			sc.tgh[r:][:w], sc.tdt[r:][:w], sc.tddt[r:][:w], sc.ts1[r:][:w], sc.ts2[r:][:w])
		if f.g.Z != nil {
			gz, zf, y := f.g.Z[i0:i0+w], sc.tzf[r:r+w], sc.ty[r:r+w]
			for j, uj := range u {
				gz[j] = zf[j] * (y[j] + D[j]*uj)
			}
		}
	}
	acc := f.acc(b, seg, c0)
	dD, dBias := f.dD[acc:acc+w], f.dBia[acc:acc+w]
	for j := range sumD {
		dD[j] += sumD[j]
		dBias[j] += sumBias[j]
	}
}

// gradOrSink returns the w elements of the gradient g at i0, or sink[:w] when g is nil.
func gradOrSink(g, sink []float32, i0, w int) []float32 {
	if g == nil {
		return sink[:w]
	}
	return g[i0 : i0+w]
}

// forwardItem runs channels [c0, c1) of batch b through the chunks of segment seg, saving the
// state entering every chunk, and writes last at the end of the sequence.
func (f *Fast) forwardItem(sc *scratch, b, c0, c1, seg int) {
	s := f.shape
	N := s.State
	k0, k1 := f.segRange(seg)
	h := sc.h[:(c1-c0)*N]
	for c := c0; c < c1; c++ {
		hc := h[(c-c0)*N:][:N]
		if k0 > 0 {
			copy(hc, f.savedAt(b, k0, c))
		} else {
			copyOrZero(hc, f.in.H0, (b*s.Channels+c)*N)
		}
	}
	for k := k0; k < k1; k++ {
		for c := c0; c < c1; c++ {
			copy(f.savedAt(b, k, c), h[(c-c0)*N:][:N])
		}
		if k+1 < k1 {
			f.prefetch(b, c0, c1, k+1, false)
		}
		f.chunkForward(sc, b, c0, c1, k, h, true)
	}
	if k1 == f.nChunks && f.last != nil {
		copy(f.last[(b*s.Channels+c0)*N:(b*s.Channels+c1)*N], h)
	}
}

// segState (time mode) runs every channel of batch b over segment seg from the zero state and
// keeps the segment's map h ↦ ∏Ā⊙h + h_own: ∏Ā = exp(A·ΣΔ) in segA, h_own in segB.
func (f *Fast) segState(sc *scratch, b, seg int) {
	d := f.shape.Channels
	k0, k1 := f.segRange(seg)
	clear(sc.h)
	clear(sc.sum)
	for k := k0; k < k1; k++ {
		f.chunkForward(sc, b, 0, d, k, sc.h, false)
	}
	f.segMap(sc, b, seg)
}

// segAdjust (time mode) runs the adjoint of every channel of batch b over segment seg from zero
// and keeps the segment's map μ ↦ ∏Ā⊙μ + μ_own in segA and segB.
func (f *Fast) segAdjust(sc *scratch, b, seg int) {
	d := f.shape.Channels
	k0, k1 := f.segRange(seg)
	clear(sc.h)
	clear(sc.sum)
	for k := k1 - 1; k >= k0; k-- {
		f.chunkAdjoint(sc, b, 0, d, k, sc.h)
	}
	f.segMap(sc, b, seg)
}

// segMap stores the map of segment seg of batch b: exp(A·ΣΔ) from sc.sum, own part from sc.h,
// and whether a document starts inside the segment (the map is then the constant own part).
func (f *Fast) segMap(sc *scratch, b, seg int) {
	N := f.shape.State
	k0, k1 := f.segRange(seg)
	t0, _ := f.span(k0)
	_, t1 := f.span(k1 - 1)
	f.segCut[b*f.nSeg+seg] = f.in.Resets != nil && slices.ContainsFunc(f.in.Resets[b*f.shape.Len:][t0:t1],
		func(r uint8) bool { return r != 0 })
	for c := range f.shape.Channels {
		j := f.acc(b, seg, c) * N
		A := f.in.A[c*N:][:N]
		lo, hi := math32.Bounds(A)
		math32.ExpRow(f.segA[j:j+N], A, sc.sum[c], lo, hi)
		copy(f.segB[j:j+N], sc.h[c*N:][:N])
	}
}

// backwardSegment (time mode) runs the backward of every channel of batch b over the chunks of
// segment seg, last chunk first, and writes the chunks' dB and dC rows.
func (f *Fast) backwardSegment(sc *scratch, b, seg int) {
	s := f.shape
	N := s.State
	k0, k1 := f.segRange(seg)
	for k := k1 - 1; k >= k0; k-- {
		t0, t1 := f.span(k)
		clear(sc.part)
		f.chunkBackward(sc, b, 0, s.Channels, k, sc.part, sc.part[f.chunk*N:], seg)
		rows := (t1 - t0) * N
		if f.g.B != nil {
			copy(f.g.B[(b*s.Len+t0)*N:][:rows], sc.part)
		}
		if f.g.C != nil {
			copy(f.g.C[(b*s.Len+t0)*N:][:rows], sc.part[f.chunk*N:])
		}
	}
}

// backwardBlock (channel mode) runs the backward of the current window's chunks, last first,
// for the channels of block blk of batch b, into the block's part of f.part.
func (f *Fast) backwardBlock(sc *scratch, b, blk int) {
	s := f.shape
	N := s.State
	half := f.win * f.chunk * N
	part := f.part[(b*f.nBlk+blk)*2*half:][:2*half]
	clear(part)
	c0, c1 := blk*f.blk, min((blk+1)*f.blk, s.Channels)
	for k := f.k1 - 1; k >= f.k0; k-- {
		if k > 0 {
			f.prefetch(b, c0, c1, k-1, true)
		}
		off := (k - f.k0) * f.chunk * N
		f.chunkBackward(sc, b, c0, c1, k, part[off:], part[half+off:], 0)
	}
}
