package scan

import (
	"errors"
	"runtime"

	"github.com/mambago/mamba/internal/parallel"
)

// Work items are cut by the shape alone, never by the worker count: dB and dC are summed over
// channels block by block, so the blocks fix the bits of the result.
const (
	// maxBlock channels make one work item of channel mode; the block is halved, down to
	// minBlock (16 floats, a cache line of a token row), while the shape gives fewer than
	// targetItems items, so that small batches still keep 16 cores busy with two items each.
	// Smaller blocks cost about a quarter more per element (per-row work over fewer channels).
	maxBlock, minBlock = 64, 16
	targetItems        = 32
	// targetSegments is how many time segments time mode aims for.
	targetSegments = 64
	// blockPartFloats bounds a block's partial sums of dB and dC in the backward of channel
	// mode (64 KiB, so that they stay in a core's L2): the chunks of a window run without a
	// barrier between them, and their partial sums are kept until the window's reduction.
	blockPartFloats = 16 << 10
	// reduceSteps is the number of steps of one item of that reduction.
	reduceSteps = 16
)

// Fast is the float32 selective-scan kernel. It implements Kernel[float32]; see the package doc
// for the scheme. A Fast holds its scratch and the chunk-boundary states between Forward and
// Backward and is reused call after call; it is not safe for concurrent use.
type Fast struct {
	shape   Shape
	soft    bool
	workers int // 0 = GOMAXPROCS at call time

	chunk, nChunks int // timesteps per chunk, chunks per sequence
	timeMode       bool
	segChunks      int // chunks per segment: nChunks in channel mode
	nSeg           int // segments per sequence: 1 in channel mode
	nBlk           int // channel blocks: ceil(Channels/blk) in channel mode, 1 in time mode
	blk            int // channels per block (blockSize), Channels in time mode
	win            int // channel mode: chunks per backward window

	saved []float32 // (Batch, nChunks, Channels, State): the state entering each chunk
	ready bool      // Forward has filled saved

	mu       []float32 // (Batch, nSeg, Channels, State): d(loss)/d(h) entering the current chunk from the right
	dA       []float32 // (Batch, nSeg, Channels, State): partial sums of dA
	dD, dBia []float32 // (Batch, nSeg, Channels): partial sums of dD and d(DeltaBias)
	part     []float32 // channel mode: (Batch, nBlk, 2, win·chunk, State), dB then dC of the window per block
	segA     []float32 // time mode: (Batch, nSeg, Channels, State), ∏Ā over each segment
	segB     []float32 // time mode: the same, the segment's own contribution (state or adjoint)
	segCut   []bool    // time mode: (Batch, nSeg), a document starts inside the segment

	work []*scratch // per worker slot
	job  parallel.Job

	// The arguments of the running call, and its phase.
	phase  int
	k0, k1 int // channel mode backward: the window's chunks [k0, k1)
	in     Inputs[float32]
	out    []float32
	last   []float32
	dout   []float32
	dlast  []float32
	g      Grads[float32]
}

// scratch is one worker slot's memory. Tiles are (chunk, channels of the item) in token-major
// order.
type scratch struct {
	abar, hs []float32 // (chunk, State): Ā_t and h_t of one channel, kept for the reverse pass
	row      []float32 // (State): the state or adjoint chained over the segments (time mode)
	zero     []float32 // (State): the state entering a step where a document starts; never written
	cuts     []int     // the pieces of the current chunk (see pieces)
	h        []float32 // (blk, State): running state (or adjoint) of each channel of the item
	sum      []float32 // (blk): running ΣΔ of each channel (time mode)
	part     []float32 // time mode: (2, chunk, State), dB then dC of the current chunk

	tdt, tddt, tdu, tsg []float32 // tiles: Δ, dΔ/dδ, Δ·u, silu(z)
	tgh, tzf            []float32 // tiles: ĝ, the dz factor (silu'(z), then g·silu'(z))
	ty, ts1, ts2        []float32 // tiles: C·h (y before D·u and the gate), Σ_n λ·B, Σ_n A·λ·Ā·h_{t−1}

	skip, sumD, sumBias []float32 // (blk): D of the item's channels (0 without D), sums of dD and d(bias) over a chunk
	sink                []float32 // (blk): where the rows of gradients nobody asked for go
}

func newScratch(chunk, blk, N int) *scratch {
	v := func(n int) []float32 { return make([]float32, n) }
	T, W := chunk, blk
	return &scratch{
		abar: v(T * N), hs: v(T * N), row: v(N), zero: v(N), cuts: make([]int, 0, T+1), h: v(W * N), sum: v(W),
		part: v(2 * T * N),
		tdt:  v(T * W), tddt: v(T * W), tdu: v(T * W), tsg: v(T * W), tgh: v(T * W), tzf: v(T * W),
		ty: v(T * W), ts1: v(T * W), ts2: v(T * W), skip: v(W), sumD: v(W), sumBias: v(W), sink: v(W),
	}
}

// Phases of Forward and Backward; items.Item(w, i) dispatches on them.
const (
	phaseForward   = iota // item (b, block or segment): run the forward over its chunks
	phaseSegState         // time mode: item (b, segment): ∏Ā and the state from zero over the segment
	phaseSegAdjust        // time mode: item (b, segment): ∏Ā and the adjoint from zero over the segment
	phaseBackward         // time mode: item (b, segment); channel mode: item (b, block) over the window's chunks
	phaseReduce           // channel mode: item (b, reduceSteps steps): sum the blocks' dB and dC of the window
	phaseParams           // item (paramChannels channels): sum dA, dD and d(bias) over (batch, segment)
)

// paramChannels is the number of channels of one item of the sums of dA, dD and d(bias).
const paramChannels = 64

var _ Kernel[float32] = (*Fast)(nil)

// New returns the fast float32 kernel for shape s. The work split (channel or time mode, blocks,
// segments) depends on s and o.Chunk only, never on o.Workers.
func New(s Shape, o Options) (*Fast, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	chunk := o.Chunk
	if chunk == 0 {
		chunk = DefaultChunk
	}
	chunk = min(chunk, s.Len)
	nChunks := (s.Len + chunk - 1) / chunk
	segChunks := (nChunks + targetSegments - 1) / targetSegments
	nSeg := (nChunks + segChunks - 1) / segChunks
	f := &Fast{shape: s, soft: o.Softplus, workers: o.Workers, chunk: chunk, nChunks: nChunks}
	// Time mode (1.5× the work) pays off when channel mode would have a single item of
	// maxBlock channels: batch 1 and at most 64 channels.
	if s.Batch > 1 || s.Channels > maxBlock {
		segChunks, nSeg = nChunks, 1
	}
	f.setSplit(segChunks, nSeg)
	return f, nil
}

// setSplit fixes the segments (time mode when nSeg > 1) and sizes the buffers that depend on them.
func (f *Fast) setSplit(segChunks, nSeg int) {
	s := f.shape
	f.timeMode = nSeg > 1
	f.segChunks, f.nSeg = segChunks, nSeg
	f.blk = blockSize(s)
	f.nBlk = (s.Channels + f.blk - 1) / f.blk
	if f.timeMode {
		f.nBlk, f.blk = 1, s.Channels
	}
	N, d := s.State, s.Channels
	f.saved = make([]float32, s.Batch*f.nChunks*d*N)
	f.mu = make([]float32, s.Batch*nSeg*d*N)
	f.dA = make([]float32, s.Batch*nSeg*d*N)
	f.dD = make([]float32, s.Batch*nSeg*d)
	f.dBia = make([]float32, s.Batch*nSeg*d)
	f.part, f.segA, f.segB, f.segCut = nil, nil, nil, nil
	if f.timeMode {
		f.segA = make([]float32, s.Batch*nSeg*d*N)
		f.segB = make([]float32, s.Batch*nSeg*d*N)
		f.segCut = make([]bool, s.Batch*nSeg)
	} else {
		f.setWindow(blockPartFloats / (2 * f.chunk * N))
	}
	f.work = nil
	f.ready = false
}

// blockSize returns the channels of a channel-mode work item for shape s: maxBlock, halved down
// to minBlock while Batch·ceil(Channels/block) < targetItems, and at most Channels.
func blockSize(s Shape) int {
	blk := maxBlock
	for blk > minBlock && s.Batch*((s.Channels+blk-1)/blk) < targetItems {
		blk /= 2
	}
	return min(blk, s.Channels)
}

// setWindow makes the backward of channel mode run win chunks (at least 1, at most all) between
// two reductions of dB and dC. It changes no bit of the results: every element of dB and dC is
// summed over the blocks in block order whatever the window.
func (f *Fast) setWindow(win int) {
	f.win = max(1, min(win, f.nChunks))
	f.part = make([]float32, f.shape.Batch*f.nBlk*2*f.win*f.chunk*f.shape.State)
}

// Shape returns the shape the kernel was made for.
func (f *Fast) Shape() Shape { return f.shape }

// SavedBytes is the memory kept from Forward for Backward: one state per chunk,
// 4·Batch·Channels·State·ceil(Len/Chunk) bytes.
func (f *Fast) SavedBytes() int { return 4 * len(f.saved) }

// begin sets up the worker slots for a call and returns their count: the worker count, but no
// more than the largest phase has items.
func (f *Fast) begin() int {
	w := f.workers
	if w == 0 {
		w = runtime.GOMAXPROCS(0)
	}
	s := f.shape
	w = min(w, s.Batch*f.nBlk*f.nSeg)
	for len(f.work) < w {
		f.work = append(f.work, newScratch(f.chunk, f.blk, s.State))
	}
	return w
}

// end drops the references to the caller's slices.
func (f *Fast) end() {
	f.in, f.out, f.last, f.dout, f.dlast, f.g = Inputs[float32]{}, nil, nil, nil, nil, Grads[float32]{}
}

// Forward implements Kernel.
func (f *Fast) Forward(in Inputs[float32], out, last []float32) error {
	if err := checkForward(f.shape, in, out, last); err != nil {
		return err
	}
	w := f.begin()
	defer f.end()
	f.in, f.out, f.last = in, out, last
	s := f.shape
	if f.timeMode {
		f.phase = phaseSegState
		f.job.Run((*items)(f), s.Batch*f.nSeg, w)
		f.combineStates()
	}
	f.phase = phaseForward
	f.job.Run((*items)(f), s.Batch*f.nBlk*f.nSeg, w)
	f.ready = true
	return nil
}

// Backward implements Kernel.
func (f *Fast) Backward(in Inputs[float32], dout, dlast []float32, g Grads[float32]) error {
	if err := checkBackward(f.shape, in, dout, dlast, g); err != nil {
		return err
	}
	if !f.ready {
		return errors.New("scan: Backward called before Forward")
	}
	w := f.begin()
	defer f.end()
	f.in, f.dout, f.dlast, f.g = in, dout, dlast, g
	s := f.shape
	clear(f.dA)
	clear(f.dD)
	clear(f.dBia)
	if f.timeMode {
		f.phase = phaseSegAdjust
		f.job.Run((*items)(f), s.Batch*f.nSeg, w)
		f.combineAdjoints()
		f.phase = phaseBackward
		f.job.Run((*items)(f), s.Batch*f.nSeg, w)
	} else {
		f.initAdjoints()
		for f.k1 = f.nChunks; f.k1 > 0; f.k1 = f.k0 {
			f.k0 = max(0, f.k1-f.win)
			f.phase = phaseBackward
			f.job.Run((*items)(f), s.Batch*f.nBlk, w)
			if g.B != nil || g.C != nil {
				f.phase = phaseReduce
				f.job.Run((*items)(f), s.Batch*f.reducePieces(), w)
			}
		}
	}
	f.phase = phaseParams
	f.job.Run((*items)(f), (s.Channels+paramChannels-1)/paramChannels, w)
	if g.H0 != nil {
		N, d := s.State, s.Channels
		for b := range s.Batch {
			copy(g.H0[b*d*N:(b+1)*d*N], f.mu[b*f.nSeg*d*N:])
		}
	}
	return nil
}

// items is a Fast seen as the body of its parallel loops (parallel.Body).
type items Fast

// Item runs work item i of the current phase on worker slot w.
func (it *items) Item(w, i int) {
	f := (*Fast)(it)
	sc := f.work[w]
	switch f.phase {
	case phaseForward:
		b, j := i/(f.nBlk*f.nSeg), i%(f.nBlk*f.nSeg)
		blk, seg := j/f.nSeg, j%f.nSeg
		f.forwardItem(sc, b, blk*f.blk, min((blk+1)*f.blk, f.shape.Channels), seg)
	case phaseSegState:
		f.segState(sc, i/f.nSeg, i%f.nSeg)
	case phaseSegAdjust:
		f.segAdjust(sc, i/f.nSeg, i%f.nSeg)
	case phaseBackward:
		if f.timeMode {
			f.backwardSegment(sc, i/f.nSeg, i%f.nSeg)
		} else {
			f.backwardBlock(sc, i/f.nBlk, i%f.nBlk)
		}
	case phaseReduce:
		n := f.reducePieces()
		f.reduceWindow(i/n, i%n)
	case phaseParams:
		f.reduceParams(i*paramChannels, min(f.shape.Channels, (i+1)*paramChannels))
	}
}

// span returns the timesteps [t0, t1) of chunk k.
func (f *Fast) span(k int) (int, int) {
	return k * f.chunk, min((k+1)*f.chunk, f.shape.Len)
}

// savedAt returns the saved state entering chunk k of (b, c).
func (f *Fast) savedAt(b, k, c int) []float32 {
	N := f.shape.State
	return f.saved[((b*f.nChunks+k)*f.shape.Channels+c)*N:][:N]
}

// acc returns the index of (b, seg, c) in the per-segment accumulators (times State for the
// state-sized ones).
func (f *Fast) acc(b, seg, c int) int { return (b*f.nSeg+seg)*f.shape.Channels + c }

// rows returns the rows of B and C for steps [t0, t1) of batch b.
func (f *Fast) rows(b, t0, t1 int) ([]float32, []float32) {
	s := f.shape
	lo, hi := (b*s.Len+t0)*s.State, (b*s.Len+t1)*s.State
	return f.in.B[lo:hi], f.in.C[lo:hi]
}

// combine is the scan operator on affine maps h ↦ a·h + b, the left one applied first:
// (a1, b1)∘(a2, b2) = (a1·a2, a2·b1 + b2). It is associative with identity (1, 0).
func combine[T float32 | float64](a1, b1, a2, b2 T) (T, T) { return a1 * a2, a2*b1 + b2 }

// affine sets m = a⊙m + v, applying a segment's map (∏Ā, own part) to a state or an adjoint:
// the state is the constant map (0, m), composed with (a, v).
func affine(m, a, v []float32) {
	a, v = a[:len(m)], v[:len(m)]
	for n := range m {
		_, m[n] = combine(0, m[n], a[n], v[n])
	}
}

// applySeg applies the map of segment seg of channel c of batch b to m (a state or an
// adjoint): m = ∏Ā⊙m + own, or own alone when a document starts inside the segment.
func (f *Fast) applySeg(m []float32, b, seg, c int) {
	N := len(m)
	j := f.acc(b, seg, c) * N
	if f.segCut[b*f.nSeg+seg] {
		copy(m, f.segB[j:j+N])
		return
	}
	affine(m, f.segA[j:j+N], f.segB[j:j+N])
}

// segRange returns the chunks [k0, k1) of segment seg.
func (f *Fast) segRange(seg int) (int, int) {
	return seg * f.segChunks, min((seg+1)*f.segChunks, f.nChunks)
}

// combineStates (time mode) chains the segments' maps from H0 and saves the state entering each
// segment, which then runs in parallel from it.
func (f *Fast) combineStates() {
	s := f.shape
	N, d := s.State, s.Channels
	h := f.work[0].row
	for b := range s.Batch {
		for c := range d {
			copyOrZero(h, f.in.H0, (b*d+c)*N)
			for seg := range f.nSeg - 1 {
				f.applySeg(h, b, seg, c)
				k0, _ := f.segRange(seg + 1)
				copy(f.savedAt(b, k0, c), h)
			}
		}
	}
}

// combineAdjoints (time mode) chains the segments' adjoint maps from dlast, last segment first,
// and stores the adjoint entering each segment from the right in mu.
func (f *Fast) combineAdjoints() {
	s := f.shape
	N, d := s.State, s.Channels
	m := f.work[0].row
	for b := range s.Batch {
		for c := range d {
			copyOrZero(m, f.dlast, (b*d+c)*N)
			for seg := f.nSeg - 1; seg >= 0; seg-- {
				j := f.acc(b, seg, c) * N
				copy(f.mu[j:j+N], m)
				f.applySeg(m, b, seg, c)
			}
		}
	}
}

// copyOrZero fills dst from src[off:], or with zeros when src is nil (an absent H0 or dlast).
func copyOrZero(dst, src []float32, off int) {
	if src == nil {
		clear(dst)
		return
	}
	copy(dst, src[off:][:len(dst)])
}

// initAdjoints (channel mode) starts the adjoint at the end of the sequence from dlast.
func (f *Fast) initAdjoints() { copyOrZero(f.mu, f.dlast, 0) }

// reducePieces returns the number of reduction items per batch row of the current window.
func (f *Fast) reducePieces() int {
	t0, _ := f.span(f.k0)
	_, t1 := f.span(f.k1 - 1)
	return (t1 - t0 + reduceSteps - 1) / reduceSteps
}

// reduceWindow (channel mode) writes piece p (reduceSteps steps) of the current window's rows
// of dB and dC of batch b: the blocks' parts summed in block order.
func (f *Fast) reduceWindow(b, p int) {
	s := f.shape
	N := s.State
	w0, _ := f.span(f.k0)
	_, w1 := f.span(f.k1 - 1)
	t0 := w0 + p*reduceSteps
	t1 := min(t0+reduceSteps, w1)
	half := f.win * f.chunk * N // one of dB, dC of a block
	parts := f.part[b*f.nBlk*2*half:][:f.nBlk*2*half]
	for h, dst := range [2][]float32{f.g.B, f.g.C} {
		if dst == nil {
			continue
		}
		dst = dst[(b*s.Len+t0)*N : (b*s.Len+t1)*N]
		off := h*half + (t0-w0)*N
		copy(dst, parts[off:][:len(dst)])
		for blk := 1; blk < f.nBlk; blk++ {
			p := parts[blk*2*half+off:][:len(dst)]
			for r := range dst {
				dst[r] += p[r]
			}
		}
	}
}

// reduceParams writes dA, dD and d(DeltaBias) of channels [c0, c1): the per-(batch, segment)
// partial sums added in (batch, segment) order.
func (f *Fast) reduceParams(c0, c1 int) {
	s := f.shape
	N, d := s.State, s.Channels
	for c := c0; c < c1; c++ {
		var dD, dBias float32
		for bs := range s.Batch * f.nSeg {
			j := bs*d + c
			dD += f.dD[j]
			dBias += f.dBia[j]
			if f.g.A != nil {
				dst, p := f.g.A[c*N:][:N], f.dA[j*N:][:N]
				if bs == 0 {
					clear(dst)
				}
				for n := range dst {
					dst[n] += p[n]
				}
			}
		}
		if f.g.D != nil {
			f.g.D[c] = dD
		}
		if f.g.DeltaBias != nil {
			f.g.DeltaBias[c] = dBias
		}
	}
}
