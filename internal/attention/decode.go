package attention

import (
	"fmt"
	"math"
	"runtime"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/parallel"
)

// DecodeChunk is the number of cached keys one decode work item reads. It is fixed (never derived
// from the worker count), because the chunks' partial softmax sums are combined in chunk order.
const DecodeChunk = 256

// Decoder attends one new query row per sequence to a key/value cache: the step of generation.
// Its shape's Len is the capacity of the cache. A Decoder holds its scratch; it is not safe for
// concurrent use.
//
// Step splits the n cached keys of each (sequence, key/value head) into chunks of DecodeChunk and
// runs the chunks as separate items (flash-decoding), each keeping for every query head of the
// group its partial max m_c, sum l_c = Σ_j exp(s_j − m_c) and output o_c = Σ_j exp(s_j − m_c) v_j;
// a second pass combines them in chunk order,
//
//	M = max_c m_c,  out = Σ_c exp(m_c − M) o_c / Σ_c exp(m_c − M) l_c,
//
// so that a long cache keeps every core busy even at batch 1, with results independent of the
// worker count.
type Decoder struct {
	shape   Shape
	workers int
	scale   float32
	part    []float32 // (Batch, Heads, ceil(Len/DecodeChunk), HeadDim+2): o_c, m_c, l_c
	work    [][]float32
	job     parallel.Job
	team    *parallel.Team // runs the passes instead of job when set

	// The arguments of the running call, and its phase.
	combine          bool
	n, nc            int
	out, q, kc, vc   []float32
	ldPart, perChunk int
}

// NewDecoder returns a float32 decoder for caches of s.Len positions; o.Tile is ignored.
func NewDecoder(s Shape, o Options) (*Decoder, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	nc := (s.Len + DecodeChunk - 1) / DecodeChunk
	d := &Decoder{shape: s, workers: o.Workers, scale: float32(s.Scale()), perChunk: s.HeadDim + 2}
	d.ldPart = nc * d.perChunk
	if nc > 1 {
		d.part = make([]float32, s.Batch*s.Heads*d.ldPart)
	}
	return d, nil
}

// Shape returns the shape the decoder was made for.
func (d *Decoder) Shape() Shape { return d.shape }

// SetTeam makes Step run its passes on t (nil: on the decoder's own parallel loop), for a caller
// whose other phases run on t: its members are then not left spinning beside the loop's helpers.
// The results are the same bits either way.
func (d *Decoder) SetTeam(t *parallel.Team) { d.team = t }

// checkStep validates the arguments of a decode step on shape s (Len = capacity).
func checkStep[T float32 | float64](s Shape, out, q, kc, vc []T, n int) error {
	if n < 1 || n > s.Len {
		return fmt.Errorf("attention: decode step with %d cached positions, want 1 to the capacity %d", n, s.Len)
	}
	if err := check(s, "q", q, stepRows, false); err != nil {
		return err
	}
	if err := check(s, "out", out, stepRows, false); err != nil {
		return err
	}
	if err := check(s, "key cache", kc, keyRows, false); err != nil {
		return err
	}
	return check(s, "value cache", vc, keyRows, false)
}

// Step sets out (Batch, Heads·HeadDim) to the attention of the queries q (Batch, Heads·HeadDim),
// at position n−1 of each sequence, to the first n positions of the caches kc and vc
// (Batch, Len, KVHeads·HeadDim); the caller has written the new token's key and value at
// position n−1.
func (d *Decoder) Step(out, q, kc, vc []float32, n int) error {
	s := d.shape
	if err := checkStep(s, out, q, kc, vc, n); err != nil {
		return err
	}
	d.n, d.nc = n, (n+DecodeChunk-1)/DecodeChunk
	d.out, d.q, d.kc, d.vc = out, q, kc, vc
	defer func() { d.out, d.q, d.kc, d.vc = nil, nil, nil, nil }()
	w := d.workers
	if w == 0 {
		w = runtime.GOMAXPROCS(0)
	}
	items := s.Batch * s.KVHeads * d.nc
	w = parallel.Workers(items, w)
	if d.team != nil {
		w = d.team.Size()
	}
	for len(d.work) < w {
		d.work = append(d.work, make([]float32, DecodeChunk))
	}
	d.combine = false
	d.run(items, w)
	if d.nc > 1 {
		d.combine = true
		d.run(s.Batch*s.Heads, w)
	}
	return nil
}

// run runs n items of the current pass on the team or the decoder's loop.
func (d *Decoder) run(n, w int) {
	if d.team != nil {
		d.team.Run((*decodeItems)(d), n, 0)
		return
	}
	d.job.Run((*decodeItems)(d), n, w)
}

// decodeItems runs the items of the current pass of a Decoder.
type decodeItems Decoder

// Item runs item i of the current pass: chunk c of key/value head g of sequence b, or the
// combination of head h of sequence b.
func (it *decodeItems) Item(w, i int) {
	d := (*Decoder)(it)
	s := d.shape
	hd := s.HeadDim
	if d.combine {
		d.combineItem(i/s.Heads, i%s.Heads)
		return
	}
	c := i / (s.Batch * s.KVHeads)
	b, g := i%(s.Batch*s.KVHeads)/s.KVHeads, i%s.KVHeads
	ldq, ldk := s.Heads*hd, s.KVHeads*hd
	j0, j1 := c*DecodeChunk, min(d.n, (c+1)*DecodeChunk)
	kv := (b*s.Len+j0)*ldk + g*hd
	p := d.work[w][:j1-j0]
	for h := g * s.Group(); h < (g+1)*s.Group(); h++ {
		q := d.q[b*ldq+h*hd:][:hd]
		dots(p, q, d.kc[kv:], ldk, j1-j0)
		mx := p[0]
		for _, v := range p[1:] {
			mx = max(mx, v)
		}
		m := d.scale * mx
		expAffine(p, p, d.scale, -m)
		var l float32
		for _, v := range p {
			l += v
		}
		if d.nc == 1 {
			o := d.out[b*ldq+h*hd:][:hd]
			mulAdd(o, hd, p, 0, 1, d.vc[kv:], ldk, 1, hd, j1-j0, false)
			scaleRows(o, hd, 1, hd, 1/l)
			continue
		}
		part := d.part[(b*s.Heads+h)*d.ldPart+c*d.perChunk:][:d.perChunk]
		mulAdd(part, hd, p, 0, 1, d.vc[kv:], ldk, 1, hd, j1-j0, false)
		part[hd], part[hd+1] = m, l
	}
}

// combineItem merges the chunks of head h of sequence b in chunk order.
func (d *Decoder) combineItem(b, h int) {
	s := d.shape
	hd := s.HeadDim
	parts := d.part[(b*s.Heads+h)*d.ldPart:]
	M := float32(math.Inf(-1))
	for c := range d.nc {
		M = max(M, parts[c*d.perChunk+hd])
	}
	o := d.out[(b*s.Heads+h)*hd:][:hd]
	clear(o)
	var l float32
	for c := range d.nc {
		part := parts[c*d.perChunk:][:d.perChunk]
		e := math32.Exp(part[hd] - M)
		l += e * part[hd+1]
		for i, v := range part[:hd] {
			o[i] += e * v
		}
	}
	scaleRows(o, hd, 1, hd, 1/l)
}

// DecodeReference is Decoder.Step in float64, written out plainly: for each sequence and head,
// the softmax of c·q·k_j over the n cached keys, times the cached values.
func DecodeReference(s Shape, out, q, kc, vc []float64, n int) error {
	if err := s.validate(); err != nil {
		return err
	}
	if err := checkStep(s, out, q, kc, vc, n); err != nil {
		return err
	}
	hd := s.HeadDim
	ldk := s.KVHeads * hd
	p := make([]float64, n)
	for b := range s.Batch {
		for h := range s.Heads {
			qh := q[(b*s.Heads+h)*hd:][:hd]
			g := h / s.Group()
			mx := math.Inf(-1)
			for j := range n {
				k := kc[(b*s.Len+j)*ldk+g*hd:][:hd]
				var dp float64
				for x := range hd {
					dp += qh[x] * k[x]
				}
				p[j] = s.Scale() * dp
				mx = math.Max(mx, p[j])
			}
			var z float64
			for j := range n {
				p[j] = math.Exp(p[j] - mx)
				z += p[j]
			}
			o := out[(b*s.Heads+h)*hd:][:hd]
			clear(o)
			for j := range n {
				v := vc[(b*s.Len+j)*ldk+g*hd:][:hd]
				for x := range hd {
					o[x] += p[j] / z * v[x]
				}
			}
		}
	}
	return nil
}
