package attention

import (
	"errors"
	"math"
	"runtime"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/parallel"
)

// Flash is the float32 causal attention kernel, tiled as FlashAttention-2: see the package doc for
// the scheme. It keeps only the row log-sum-exps between Forward and Backward. A Flash holds its
// scratch and is reused call after call; it is not safe for concurrent use.
type Flash struct {
	shape   Shape
	tile    int // T: query and key rows per tile
	nT      int // tiles per sequence, ceil(Len/T)
	workers int // 0 = GOMAXPROCS at call time
	scale   float32

	lse    []float32 // (Batch·Len, Heads): log Σ_j exp(s_ij) of every query row, kept for Backward
	starts []int32   // (Batch·Len): document start of every token; sized on the first call with resets
	ready  bool      // Forward has filled lse

	work []*scratch // per worker slot
	job  parallel.Job

	// The arguments of the running call, and its phase.
	phase   int
	docs    bool // in.Resets != nil
	in      Inputs[float32]
	out, do []float32
	g       Grads[float32]
}

// scratch is one worker slot's memory: tiles of at most T rows and columns.
type scratch struct {
	kt, vt  []float32 // (HeadDim, T): a key tile and a value tile, transposed
	s, p    []float32 // (T, T): scores, then probabilities; dP, then dS
	acc     []float32 // (T, HeadDim): output, dQ or dK accumulator
	acc2    []float32 // (T, HeadDim): dV accumulator
	m, l, d []float32 // (T): running max and sum of each query row; D_i = dO_i·O_i
}

func newScratch(T, hd int) *scratch {
	v := func(n int) []float32 { return make([]float32, n) }
	return &scratch{kt: v(hd * T), vt: v(hd * T), s: v(T * T), p: v(T * T), acc: v(T * hd), acc2: v(T * hd), m: v(T), l: v(T), d: v(T)}
}

// Phases of Forward and Backward; items.Item(w, i) dispatches on them.
const (
	phaseForward = iota // item (query tile, b, h): O and LSE of the tile's rows
	phaseKV             // item (key tile, b, kv head): dK and dV of the tile's rows
	phaseQ              // item (query tile, b, h): dQ of the tile's rows
)

var _ Kernel[float32] = (*Flash)(nil)

// New returns the float32 kernel for shape s. The tiles depend on s and o.Tile only, never on
// o.Workers.
func New(s Shape, o Options) (*Flash, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	T := o.Tile
	if T == 0 {
		T = DefaultTile
	}
	T = min(T, s.Len)
	return &Flash{
		shape: s, tile: T, nT: (s.Len + T - 1) / T, workers: o.Workers,
		scale: float32(s.Scale()),
		lse:   make([]float32, s.Batch*s.Len*s.Heads),
	}, nil
}

// Shape returns the shape the kernel was made for.
func (f *Flash) Shape() Shape { return f.shape }

// SavedBytes is the memory Forward keeps for Backward: one float32 log-sum-exp per query row,
// 4·Heads bytes per token.
func (f *Flash) SavedBytes() int { return 4 * len(f.lse) }

// LSE returns the row log-sum-exps of the last Forward, (Batch·Len, Heads): LSE_i = log Σ_j
// exp(s_ij) over the keys row i sees.
func (f *Flash) LSE() []float32 { return f.lse }

// begin sets up the worker slots and the document starts for a call and returns the slot count.
func (f *Flash) begin(in Inputs[float32]) int {
	w := f.workers
	if w == 0 {
		w = runtime.GOMAXPROCS(0)
	}
	s := f.shape
	w = parallel.Workers(s.Batch*s.Heads*f.nT, w)
	for len(f.work) < w {
		f.work = append(f.work, newScratch(f.tile, s.HeadDim))
	}
	f.in, f.docs = in, in.Resets != nil
	if f.docs {
		if f.starts == nil {
			f.starts = make([]int32, s.Batch*s.Len)
		}
		docStarts(f.starts, in.Resets, s.Batch, s.Len)
	}
	return w
}

// end drops the references to the caller's slices.
func (f *Flash) end() { f.in, f.out, f.do, f.g = Inputs[float32]{}, nil, nil, Grads[float32]{} }

// Forward implements Kernel.
func (f *Flash) Forward(in Inputs[float32], out []float32) error {
	if err := checkForward(f.shape, in, out); err != nil {
		return err
	}
	w := f.begin(in)
	defer f.end()
	f.out = out
	s := f.shape
	f.phase = phaseForward
	f.job.Run((*items)(f), s.Batch*s.Heads*f.nT, w)
	f.ready = true
	return nil
}

// Backward implements Kernel.
func (f *Flash) Backward(in Inputs[float32], out, dout []float32, g Grads[float32]) error {
	if err := checkBackward(f.shape, in, out, dout, g); err != nil {
		return err
	}
	if !f.ready {
		return errors.New("attention: Backward called before Forward")
	}
	w := f.begin(in)
	defer f.end()
	f.out, f.do, f.g = out, dout, g
	s := f.shape
	if g.K != nil || g.V != nil {
		f.phase = phaseKV
		f.job.Run((*items)(f), s.Batch*s.KVHeads*f.nT, w)
	}
	if g.Q != nil {
		f.phase = phaseQ
		f.job.Run((*items)(f), s.Batch*s.Heads*f.nT, w)
	}
	return nil
}

// items runs the work items of the current phase.
type items Flash

func (it *items) Item(w, i int) {
	f := (*Flash)(it)
	switch f.phase {
	case phaseForward:
		f.forwardItem(f.work[w], i)
	case phaseKV:
		f.kvItem(f.work[w], i)
	case phaseQ:
		f.qItem(f.work[w], i)
	}
}

// queryItem decodes the item index of the forward and dQ phases: the last query tiles, which see
// the most keys, come first.
func (f *Flash) queryItem(i int) (b, h, qt int) {
	s := f.shape
	bh := i % (s.Batch * s.Heads)
	return bh / s.Heads, bh % s.Heads, f.nT - 1 - i/(s.Batch*s.Heads)
}

// rows returns the token range [lo, hi) of tile t.
func (f *Flash) rows(t int) (lo, hi int) {
	lo = t * f.tile
	return lo, min(f.shape.Len, lo+f.tile)
}

// start is the position of the first key token i of sequence b may see.
func (f *Flash) start(b, i int) int {
	if !f.docs {
		return 0
	}
	return int(f.starts[b*f.shape.Len+i])
}

// keyRange returns the keys [lo, hi) of the tile [j0, j1) that query i of sequence b sees,
// relative to j0; lo ≥ hi when it sees none.
func (f *Flash) keyRange(b, i, j0, j1 int) (lo, hi int) {
	return max(j0, f.start(b, i)) - j0, min(j1, i+1) - j0
}

// forwardItem computes the output rows and log-sum-exps of one query tile [i0, i1) of head h of
// sequence b, one key tile [j0, j1) after the other with the online softmax:
//
//	S = c·Q Kᵀ (tile),  m_new = max(m, max_j S_ij),  P_ij = exp(S_ij − m_new)
//	l ← exp(m − m_new)·l + Σ_j P_ij,  A ← exp(m − m_new)·A + P V,  m ← m_new
//	O_i = A_i / l_i,  LSE_i = m_i + log l_i
//
// over the keys each row sees (its document, up to itself); the others count as P = 0.
func (f *Flash) forwardItem(sc *scratch, idx int) {
	s := f.shape
	b, h, qt := f.queryItem(idx)
	hd, T := s.HeadDim, f.tile
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	i0, i1 := f.rows(qt)
	tq := i1 - i0
	q := f.in.Q[(b*s.Len+i0)*ldq+h*hd:]
	kv := (b*s.Len)*ldk + h/s.Group()*hd
	m, l, acc := sc.m[:tq], sc.l[:tq], sc.acc[:tq*hd]
	for r := range m {
		m[r], l[r] = float32(math.Inf(-1)), 0
	}
	clear(acc)
	for kt := f.start(b, i0) / T; kt <= qt; kt++ {
		j0, j1 := f.rows(kt)
		tk := j1 - j0
		transpose(sc.kt, f.in.K[kv+j0*ldk:], ldk, tk, hd)
		p := sc.s[:tq*tk]
		mulAdd(p, tk, q, ldq, 1, sc.kt, tk, tq, tk, hd, false)
		for r := range tq {
			row := p[r*tk:][:tk]
			lo, hi := f.keyRange(b, i0+r, j0, j1)
			if lo >= hi {
				clear(row)
				continue
			}
			mx := row[lo]
			for _, v := range row[lo+1 : hi] {
				mx = max(mx, v)
			}
			mNew := max(m[r], f.scale*mx)
			alpha := math32.Exp(m[r] - mNew) // 0 on the row's first tile (m = −∞)
			math32.ExpAffine(row[lo:hi], row[lo:hi], f.scale, -mNew)
			clear(row[:lo])
			clear(row[hi:])
			var sum float32
			for _, v := range row[lo:hi] {
				sum += v
			}
			l[r] = alpha*l[r] + sum
			m[r] = mNew
			if alpha != 1 {
				scaleRows(acc[r*hd:], hd, 1, hd, alpha)
			}
		}
		mulAdd(acc, hd, p, tk, 1, f.in.V[kv+j0*ldk:], ldk, tq, hd, tk, true)
	}
	out := f.out[(b*s.Len+i0)*ldq+h*hd:]
	for r := range tq {
		storeRows(out[r*ldq:], ldq, acc[r*hd:], 1, hd, 1/l[r])
		f.lse[(b*s.Len+i0+r)*s.Heads+h] = m[r] + float32(math.Log(float64(l[r])))
	}
}

// Backward (FlashAttention-2). With s_ij = c·q_i·k_j, P_ij = exp(s_ij − LSE_i) over the keys
// row i sees and O_i = Σ_j P_ij v_j, the chain rule through the softmax gives
//
//	dV_j = Σ_i P_ij dO_i
//	dP_ij = dO_i·v_j
//	ds_ij = P_ij (dP_ij − Σ_l P_il dP_il) = P_ij (dP_ij − D_i),  D_i = Σ_l P_il (dO_i·v_l) = dO_i·O_i
//	dq_i = c Σ_j ds_ij k_j,  dk_j = c Σ_i ds_ij q_i
//
// and for grouped heads dK and dV of a key/value head sum over the query heads of its group.
// Nothing of size L×L is kept: P is recomputed tile by tile from the saved LSE, and D_i costs one
// dot product per row. Two passes keep every sum in one item, in a fixed order, without atomics:
// phaseKV owns a key tile of one key/value head and walks the group's query heads, then the query
// tiles from the diagonal on; phaseQ owns a query tile of one head and walks its key tiles.

// probs overwrites the tq×tk scores p of query rows [i0, i0+tq) against keys [j0, j1) of head h
// of sequence b with P_ij = exp(c·p_ij − LSE_i) where row i sees key j, 0 elsewhere.
func (f *Flash) probs(p []float32, b, h, i0, tq, j0, j1 int) {
	s := f.shape
	tk := j1 - j0
	for r := range tq {
		row := p[r*tk:][:tk]
		lo, hi := f.keyRange(b, i0+r, j0, j1)
		if lo >= hi {
			clear(row)
			continue
		}
		math32.ExpAffine(row[lo:hi], row[lo:hi], f.scale, -f.lse[(b*s.Len+i0+r)*s.Heads+h])
		clear(row[:lo])
		clear(row[hi:])
	}
}

// dScores overwrites dP (tq×tk) with ds_ij = P_ij (dP_ij − D_i) where row i of the tile sees key
// j (P is 0 elsewhere: ds is 0 there whatever dP holds).
func (f *Flash) dScores(dp, p, d []float32, b, i0, tq, j0, j1 int) {
	tk := j1 - j0
	for r := range tq {
		row, pr := dp[r*tk:][:tk], p[r*tk:][:tk]
		lo, hi := f.keyRange(b, i0+r, j0, j1)
		if lo >= hi {
			clear(row)
			continue
		}
		for j := lo; j < hi; j++ {
			row[j] = pr[j] * (row[j] - d[r])
		}
		clear(row[:lo])
		clear(row[hi:])
	}
}

// rowDots sets d[r] = D_i = dO_i·O_i for the tq rows of head h from token row i0 on.
func (f *Flash) rowDots(d []float32, b, h, i0, tq int) {
	s := f.shape
	hd, ldq := s.HeadDim, s.Heads*s.HeadDim
	o, do := f.out[(b*s.Len+i0)*ldq+h*hd:], f.do[(b*s.Len+i0)*ldq+h*hd:]
	for r := range tq {
		d[r] = dot(do[r*ldq:][:hd], o[r*ldq:][:hd])
	}
}

// kvItem computes dK and dV of one key tile [j0, j1) of key/value head g of sequence b: for each
// query head of the group in order, for each query tile from the diagonal on in order,
//
//	S = c·Q K_tileᵀ,  P = exp(S − LSE),  dV += Pᵀ dO,  dP = dO V_tileᵀ,  dS = P∘(dP − D),  dK += dSᵀ Q
//
// then dK ← c·dK. Query tiles whose every row starts its document after the key tile are
// skipped: documents only move forward.
func (f *Flash) kvItem(sc *scratch, idx int) {
	s := f.shape
	hd, ldq, ldk := s.HeadDim, s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	bg := idx % (s.Batch * s.KVHeads)
	b, g, kt := bg/s.KVHeads, bg%s.KVHeads, idx/(s.Batch*s.KVHeads)
	j0, j1 := f.rows(kt)
	tk := j1 - j0
	kv := (b*s.Len+j0)*ldk + g*hd
	transpose(sc.kt, f.in.K[kv:], ldk, tk, hd)
	transpose(sc.vt, f.in.V[kv:], ldk, tk, hd)
	dk, dv := sc.acc[:tk*hd], sc.acc2[:tk*hd]
	clear(dk)
	clear(dv)
	for h := g * s.Group(); h < (g+1)*s.Group(); h++ {
		for qt := kt; qt < f.nT; qt++ {
			i0, i1 := f.rows(qt)
			tq := i1 - i0
			if f.start(b, i0) >= j1 {
				break
			}
			q, do := f.in.Q[(b*s.Len+i0)*ldq+h*hd:], f.do[(b*s.Len+i0)*ldq+h*hd:]
			p, dp := sc.s[:tq*tk], sc.p[:tq*tk]
			mulAdd(p, tk, q, ldq, 1, sc.kt, tk, tq, tk, hd, false)
			f.probs(p, b, h, i0, tq, j0, j1)
			mulAdd(dv, hd, p, 1, tk, do, ldq, tk, hd, tq, true)
			mulAdd(dp, tk, do, ldq, 1, sc.vt, tk, tq, tk, hd, false)
			f.rowDots(sc.d, b, h, i0, tq)
			f.dScores(dp, p, sc.d, b, i0, tq, j0, j1)
			mulAdd(dk, hd, dp, 1, tk, q, ldq, tk, hd, tq, true)
		}
	}
	if f.g.K != nil {
		storeRows(f.g.K[kv:], ldk, dk, tk, hd, f.scale)
	}
	if f.g.V != nil {
		storeRows(f.g.V[kv:], ldk, dv, tk, hd, 1)
	}
}

// qItem computes dQ of one query tile [i0, i1) of head h of sequence b, one key tile after the
// other:
//
//	S = c·Q K_tileᵀ,  P = exp(S − LSE),  dP = dO V_tileᵀ,  dS = P∘(dP − D),  dQ += dS K_tile
//
// then dQ ← c·dQ.
func (f *Flash) qItem(sc *scratch, idx int) {
	s := f.shape
	b, h, qt := f.queryItem(idx)
	hd, T := s.HeadDim, f.tile
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	i0, i1 := f.rows(qt)
	tq := i1 - i0
	q, do := f.in.Q[(b*s.Len+i0)*ldq+h*hd:], f.do[(b*s.Len+i0)*ldq+h*hd:]
	kv := (b*s.Len)*ldk + h/s.Group()*hd
	f.rowDots(sc.d, b, h, i0, tq)
	dq := sc.acc[:tq*hd]
	clear(dq)
	for kt := f.start(b, i0) / T; kt <= qt; kt++ {
		j0, j1 := f.rows(kt)
		tk := j1 - j0
		transpose(sc.kt, f.in.K[kv+j0*ldk:], ldk, tk, hd)
		transpose(sc.vt, f.in.V[kv+j0*ldk:], ldk, tk, hd)
		p, dp := sc.s[:tq*tk], sc.p[:tq*tk]
		mulAdd(p, tk, q, ldq, 1, sc.kt, tk, tq, tk, hd, false)
		f.probs(p, b, h, i0, tq, j0, j1)
		mulAdd(dp, tk, do, ldq, 1, sc.vt, tk, tq, tk, hd, false)
		f.dScores(dp, p, sc.d, b, i0, tq, j0, j1)
		mulAdd(dq, hd, dp, tk, 1, f.in.K[kv+j0*ldk:], ldk, tq, hd, tk, true)
	}
	storeRows(f.g.Q[(b*s.Len+i0)*ldq+h*hd:], ldq, dq, tq, hd, f.scale)
}
