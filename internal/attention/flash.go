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
	dsum   []float32 // (Batch·Len, Heads): D_i = dO_i·O_i, Backward's scratch, sized on its first call
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
	ta, tb    []float32 // (HeadDim, T): transposed tiles, K and V of a key tile (phaseKV), Q and dO of a query tile
	s, p      []float32 // (T, T): scores, then probabilities; dP, then dS
	acc       []float32 // (T, HeadDim): output, dQ or dK accumulator
	acc2      []float32 // (T, HeadDim): dV accumulator
	m, l, d   []float32 // (T): running max and sum of each query row; D_i = dO_i·O_i
	bias, col []float32 // (T): the exp's offset of each query (−m or −LSE); a per-query factor or sum
}

func newScratch(T, hd int) *scratch {
	v := func(n int) []float32 { return make([]float32, n) }
	return &scratch{ta: v(hd * T), tb: v(hd * T), s: v(T * T), p: v(T * T), acc: v(T * hd), acc2: v(T * hd),
		m: v(T), l: v(T), d: v(T), bias: v(T), col: v(T)}
}

// Phases of Forward and Backward; items.Item(w, i) dispatches on them.
const (
	phaseForward = iota // item (query tile, b, h): O and LSE of the tile's rows
	phaseD              // item (query tile, b, h): D_i of the tile's rows
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
	if f.dsum == nil {
		f.dsum = make([]float32, s.Batch*s.Len*s.Heads)
	}
	f.phase = phaseD
	f.job.Run((*items)(f), s.Batch*s.Heads*f.nT, w)
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
	case phaseD:
		f.dItem(i)
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
// sequence b, one key tile [j0, j1) after the other with the online softmax. It works on the
// transposed scores (a row per key, a column per query), so that Q is transposed once per item
// and every other step is a product or runs along contiguous rows:
//
//	Sᵀ = c·K Qᵀ,  m_new = max(m, max_j Sᵀ_j),  Pᵀ_j = exp(Sᵀ_j − m_new)
//	l ← exp(m − m_new)·l + Σ_j Pᵀ_j,  A ← exp(m − m_new)·A + (Pᵀ)ᵀ V,  m ← m_new
//	O_i = A_i / l_i,  LSE_i = m_i + log l_i
//
// (vectors over the tile's queries). Keys a query does not see score −∞: P = 0.
func (f *Flash) forwardItem(sc *scratch, idx int) {
	s := f.shape
	b, h, qt := f.queryItem(idx)
	hd, T := s.HeadDim, f.tile
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	i0, i1 := f.rows(qt)
	tq := i1 - i0
	qT := sc.ta[:hd*tq]
	transpose(qT, f.in.Q[(b*s.Len+i0)*ldq+h*hd:], ldq, tq, hd)
	kv := (b*s.Len)*ldk + h/s.Group()*hd
	m, l, acc, bias, alpha := sc.m[:tq], sc.l[:tq], sc.acc[:tq*hd], sc.bias[:tq], sc.col[:tq]
	inf := float32(math.Inf(-1))
	for i := range m {
		m[i], l[i] = inf, 0
	}
	clear(acc)
	for kt := f.start(b, i0) / T; kt <= qt; kt++ {
		j0, j1 := f.rows(kt)
		tk := j1 - j0
		p := sc.s[:tk*tq]
		mulAdd(p, tq, f.in.K[kv+j0*ldk:], ldk, 1, qT, tq, tk, tq, hd, false)
		f.mask(p, b, i0, tq, j0, j1)
		mx := alpha
		copy(mx, p[:tq])
		for j := 1; j < tk; j++ {
			for i, v := range p[j*tq:][:tq] {
				mx[i] = max(mx[i], v)
			}
		}
		for i, v := range mx {
			mNew := max(m[i], f.scale*v)
			alpha[i], bias[i] = 1, 0 // a query that has seen no key yet keeps l = 0, A = 0
			if mNew != inf {
				alpha[i], bias[i] = math32.Exp(m[i]-mNew), -mNew // α = 0 on the first tile (m = −∞)
			}
			m[i] = mNew
		}
		for j := range tk {
			expBias(p[j*tq:][:tq], p[j*tq:][:tq], f.scale, bias)
		}
		sum := bias
		clear(sum)
		for j := range tk {
			for i, v := range p[j*tq:][:tq] {
				sum[i] += v
			}
		}
		for i, a := range alpha {
			l[i] = a*l[i] + sum[i]
			if a != 1 {
				scaleRows(acc[i*hd:], hd, 1, hd, a)
			}
		}
		mulAdd(acc, hd, p, 1, tq, f.in.V[kv+j0*ldk:], ldk, tq, hd, tk, true)
	}
	out := f.out[(b*s.Len+i0)*ldq+h*hd:]
	for i := range tq {
		storeRows(out[i*ldq:], ldq, acc[i*hd:], 1, hd, 1/l[i])
		f.lse[(b*s.Len+i0+i)*s.Heads+h] = m[i] + float32(math.Log(float64(l[i])))
	}
}

// mask sets the transposed scores pᵀ (tk×tq, keys [j0, j1) against queries [i0, i0+tq) of
// sequence b) to −∞ where a query does not see a key. Most tiles are seen whole: the last query
// sees all keys from its document's start on, the first query all keys up to itself.
func (f *Flash) mask(p []float32, b, i0, tq, j0, j1 int) {
	if f.start(b, i0+tq-1) <= j0 && j1 <= i0+1 {
		return
	}
	tk := j1 - j0
	inf := float32(math.Inf(-1))
	for i := range tq {
		lo, hi := f.keyRange(b, i0+i, j0, j1)
		lo, hi = max(lo, 0), max(hi, 0)
		for j := range min(lo, tk) {
			p[j*tq+i] = inf
		}
		for j := hi; j < tk; j++ {
			p[j*tq+i] = inf
		}
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
		expAffine(row[lo:hi], row[lo:hi], f.scale, -f.lse[(b*s.Len+i0+r)*s.Heads+h])
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

// dItem sets D_i = dO_i·O_i for the rows of one query tile of head h of sequence b.
func (f *Flash) dItem(idx int) {
	s := f.shape
	b, h, qt := f.queryItem(idx)
	hd, ldq := s.HeadDim, s.Heads*s.HeadDim
	i0, i1 := f.rows(qt)
	for i := i0; i < i1; i++ {
		row := (b*s.Len+i)*ldq + h*hd
		dots(f.dsum[(b*s.Len+i)*s.Heads+h:][:1], f.do[row:][:hd], f.out[row:], hd, 1)
	}
}

// rowD gathers D_i of the tq rows of head h of sequence b from token row i0 on into d.
func (f *Flash) rowD(d []float32, b, h, i0, tq int) {
	s := f.shape
	for r := range tq {
		d[r] = f.dsum[(b*s.Len+i0+r)*s.Heads+h]
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
	transpose(sc.ta, f.in.K[kv:], ldk, tk, hd)
	transpose(sc.tb, f.in.V[kv:], ldk, tk, hd)
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
			mulAdd(p, tk, q, ldq, 1, sc.ta, tk, tq, tk, hd, false)
			f.probs(p, b, h, i0, tq, j0, j1)
			mulAdd(dv, hd, p, 1, tk, do, ldq, tk, hd, tq, true)
			mulAdd(dp, tk, do, ldq, 1, sc.tb, tk, tq, tk, hd, false)
			f.rowD(sc.d, b, h, i0, tq)
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
// other, on transposed tiles as forwardItem (Q and dO transposed once per item):
//
//	Sᵀ = c·K Qᵀ,  Pᵀ = exp(Sᵀ − LSE),  dPᵀ = V dOᵀ,  dSᵀ = Pᵀ∘(dPᵀ − D),  dQ += (dSᵀ)ᵀ K
//
// then dQ ← c·dQ.
func (f *Flash) qItem(sc *scratch, idx int) {
	s := f.shape
	b, h, qt := f.queryItem(idx)
	hd, T := s.HeadDim, f.tile
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	i0, i1 := f.rows(qt)
	tq := i1 - i0
	qT, doT := sc.ta[:hd*tq], sc.tb[:hd*tq]
	transpose(qT, f.in.Q[(b*s.Len+i0)*ldq+h*hd:], ldq, tq, hd)
	transpose(doT, f.do[(b*s.Len+i0)*ldq+h*hd:], ldq, tq, hd)
	kv := (b*s.Len)*ldk + h/s.Group()*hd
	d, bias := sc.d[:tq], sc.bias[:tq]
	f.rowD(d, b, h, i0, tq)
	for i := range bias {
		bias[i] = -f.lse[(b*s.Len+i0+i)*s.Heads+h]
	}
	dq := sc.acc[:tq*hd]
	clear(dq)
	for kt := f.start(b, i0) / T; kt <= qt; kt++ {
		j0, j1 := f.rows(kt)
		tk := j1 - j0
		p, dp := sc.s[:tk*tq], sc.p[:tk*tq]
		mulAdd(p, tq, f.in.K[kv+j0*ldk:], ldk, 1, qT, tq, tk, tq, hd, false)
		f.mask(p, b, i0, tq, j0, j1)
		mulAdd(dp, tq, f.in.V[kv+j0*ldk:], ldk, 1, doT, tq, tk, tq, hd, false)
		for j := range tk {
			pj, dj := p[j*tq:][:tq], dp[j*tq:][:tq]
			expBias(pj, pj, f.scale, bias)
			for i, v := range pj {
				dj[i] = v * (dj[i] - d[i])
			}
		}
		mulAdd(dq, hd, dp, 1, tq, f.in.K[kv+j0*ldk:], ldk, tq, hd, tk, true)
	}
	storeRows(f.g.Q[(b*s.Len+i0)*ldq+h*hd:], ldq, dq, tq, hd, f.scale)
}
