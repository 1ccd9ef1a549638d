package layers

import (
	"fmt"
	"runtime"

	"github.com/mambago/mamba/internal/attention"
	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/parallel"
)

// LlamaDecoder runs a Transformer++ over a key/value cache: per layer the rotated keys and the
// values of every position so far, (Batch, Capacity, KVHeads·HeadDim) each, so that a new token
// attends to them instead of recomputing them. A token at position p costs O(p) in the attention
// (reading the cache), unlike the Mamba's constant-size state.
//
// Prefill at position 0 pushes the prompt through the training graph's kernels (RMSNorm, the
// products, the rotary embedding and the flash attention forward) and writes the cache; a Prefill
// later on feeds its tokens one Step at a time. Step advances every row by one token, each layer
// in short phases on a persistent team of goroutines (parallel.Team):
//
//	QKV   per head of q, k or v: n·Wᵀ for its HeadDim weight rows, RoPE at the position; k and v go
//	      into the cache
//	att   attention.Decoder: the cached keys of each (row, key/value head) in chunks of
//	      attention.DecodeChunk, combined in chunk order (flash-decoding)
//	O     per block of o_proj rows: h += a·o_projᵀ
//	GU    per block of gate/up rows: y = silu(n·gate_projᵀ) ⊙ n·up_projᵀ
//	down  per block of down_proj rows: h += y·down_projᵀ
//
// and the logits per block of vocabulary rows; the RMSNorms of the few rows run on the caller.
// Every output is one dot product over whole weight rows (read once per step), and the blocks are
// fixed by the shape, so results do not depend on the number of cores.
//
// A LlamaDecoder reads the model's parameters when it runs. It is not safe for concurrent use.
// Close stops its goroutines (they also stop when it is garbage collected).
type LlamaDecoder struct {
	m               *Llama
	batch, capacity int
	pos             int
	kc, vc          [][]float32 // per layer: (batch, capacity, KV·hd)
	rope            *attention.Rope
	att             *attention.Decoder
	step            *llamaStepper
	last            *llamaRun // the kernels and buffers of the last Prefill
}

// NewDecoder returns a decoder for batch independent sequences of up to capacity tokens, at
// position 0. Its cache takes 8·n_layer·batch·capacity·n_kv_head·head_dim bytes.
func (m *Llama) NewDecoder(batch, capacity int) (*LlamaDecoder, error) {
	c := m.cfg
	kvd := c.KVHeads() * c.HeadSize()
	switch {
	case batch < 1 || capacity < 1:
		return nil, fmt.Errorf("decoder: batch and capacity must be at least 1, got %d and %d", batch, capacity)
	case tooLarge(batch, capacity, kvd) || tooLarge(batch, c.PaddedVocab()) || tooLarge(batch, c.FF()):
		return nil, fmt.Errorf("decoder: batch %d × capacity %d is too large (a cache exceeds 2^31 elements)", batch, capacity)
	}
	rope, err := attention.NewRope(c.HeadSize(), capacity, c.RopeTheta)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	att, err := attention.NewDecoder(attention.Shape{Batch: batch, Len: capacity, Heads: c.NHead, KVHeads: c.KVHeads(), HeadDim: c.HeadSize()}, attention.Options{})
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	d := &LlamaDecoder{m: m, batch: batch, capacity: capacity, rope: rope, att: att}
	for range m.blocks {
		d.kc = append(d.kc, make([]float32, batch*capacity*kvd))
		d.vc = append(d.vc, make([]float32, batch*capacity*kvd))
	}
	d.step = newLlamaStepper(d)
	att.SetTeam(d.step.team)
	runtime.AddCleanup(d, func(t *parallel.Team) { t.Close() }, d.step.team)
	return d, nil
}

// Close stops the goroutines of Step. The decoder must not be used afterwards.
func (d *LlamaDecoder) Close() { d.step.team.Close() }

// Reset returns every row to position 0 (the cache is overwritten as it refills).
func (d *LlamaDecoder) Reset() { d.pos = 0 }

// Pos is the number of tokens consumed since the last Reset.
func (d *LlamaDecoder) Pos() int { return d.pos }

// Batch is the number of rows.
func (d *LlamaDecoder) Batch() int { return d.batch }

// Capacity is the number of positions the cache holds.
func (d *LlamaDecoder) Capacity() int { return d.capacity }

// Advance moves every row n positions on without computing them: the new positions of the cache
// repeat the positions so far in order (zeros from position 0). It is for timing a step at a long
// context without computing a prompt of that length first: every position holds its own keys and
// values, so a step reads as much memory as after a real prompt, but the logits that follow are
// not the model's.
func (d *LlamaDecoder) Advance(n int) error {
	if n < 0 || d.pos+n > d.capacity {
		return fmt.Errorf("decoder: cannot advance %d positions from %d in a cache of %d", n, d.pos, d.capacity)
	}
	kvd := d.m.cfg.KVHeads() * d.m.cfg.HeadSize()
	from := d.pos
	parallel.For(2*len(d.kc)*d.batch, 1, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			c := d.kc
			if i%2 == 1 {
				c = d.vc
			}
			row := c[i/2/d.batch][(i/2%d.batch)*d.capacity*kvd:][:d.capacity*kvd]
			for p := from; p < from+n; p++ {
				dst := row[p*kvd : (p+1)*kvd]
				if from == 0 {
					clear(dst)
				} else {
					copy(dst, row[(p%from)*kvd:])
				}
			}
		}
	})
	d.pos += n
	return nil
}

func (d *LlamaDecoder) checkIDs(ids []int32, want, positions int) error {
	if err := checkTokens(ids, want, d.m.cfg.PaddedVocab()); err != nil {
		return err
	}
	if d.pos+positions > d.capacity {
		return fmt.Errorf("decoder: %d more positions from position %d exceed the cache's capacity %d", positions, d.pos, d.capacity)
	}
	return nil
}

// Step feeds one token per row (tokens has Batch entries) and returns the next-token logits,
// (Batch, PaddedVocab), valid until the next call.
func (d *LlamaDecoder) Step(tokens []int32) ([]float32, error) {
	if err := d.checkIDs(tokens, d.batch, 1); err != nil {
		return nil, err
	}
	logits := d.step.step(tokens)
	d.pos++
	return logits, nil
}

// Prefill feeds L tokens per row (tokens is (Batch, L), row-major) and returns the logits after
// each row's last token, (Batch, PaddedVocab), valid until the next call. At position 0 the
// tokens go through the flash attention kernel in one pass; later, one Step at a time.
func (d *LlamaDecoder) Prefill(tokens []int32, L int) ([]float32, error) {
	if L < 1 {
		return nil, fmt.Errorf("decoder: prefill length must be at least 1, got %d", L)
	}
	if tooLarge(d.batch, L, d.m.cfg.widest()) {
		return nil, fmt.Errorf("decoder: prefill of %d×%d tokens is too large; split it into chunks", d.batch, L)
	}
	if err := d.checkIDs(tokens, d.batch*L, L); err != nil {
		return nil, err
	}
	if d.pos > 0 {
		col := make([]int32, d.batch)
		var logits []float32
		for t := range L {
			for b := range col {
				col[b] = tokens[b*L+t]
			}
			logits = d.step.step(col)
			d.pos++
		}
		return logits, nil
	}
	if d.last == nil || d.last.L != L {
		r, err := d.newRun(L)
		if err != nil {
			return nil, err
		}
		d.last = r
	}
	return d.forward(d.last, tokens), nil
}

// llamaRun holds the kernels and activations of a pass over L tokens per row from position 0:
// the training graph's kernels for this shape, every layer using the same ones.
type llamaRun struct {
	L                 int
	norm, normF       kernel.Kernel[[]float32]
	q, k, v, o        kernel.Kernel[[]float32]
	gate, up, glu     kernel.Kernel[[]float32]
	down, head        kernel.Kernel[[]float32]
	flash             *attention.Flash
	pos               []int32
	h, h2, n          []float32 // (rows, D)
	qs, ks, vs, a     []float32 // (rows, H·hd), (rows, KV·hd) twice, (rows, H·hd)
	g, u, y           []float32 // (rows, F)
	hf, logits        []float32 // (batch, D), (batch, V)
	args              [][]float32
	rows, qdim, kvdim int
}

func (d *LlamaDecoder) newRun(L int) (*llamaRun, error) {
	c := d.m.cfg
	D, F, V, hd := c.DModel, c.FF(), c.PaddedVocab(), c.HeadSize()
	Q, KV := c.NHead*hd, c.KVHeads()*hd
	rows := d.batch * L
	r := &llamaRun{L: L, rows: rows, qdim: Q, kvdim: KV, args: make([][]float32, 0, 4)}
	var err error
	newK := func(s kernel.Spec) kernel.Kernel[[]float32] {
		if err != nil {
			return nil
		}
		var k kernel.Kernel[[]float32]
		k, err = kernel.CPU{}.New(s)
		return k
	}
	lin := func(rows, in, out int, residual bool) kernel.Kernel[[]float32] {
		return newK(kernel.Linear{Rows: rows, In: in, Out: out, Lo: 0, Hi: out, Residual: residual})
	}
	r.norm = newK(kernel.RMSNorm{Rows: rows, Dim: D, Eps: c.NormEps})
	r.normF = newK(kernel.RMSNorm{Rows: d.batch, Dim: D, Eps: c.NormEps})
	r.q, r.k, r.v, r.o = lin(rows, D, Q, false), lin(rows, D, KV, false), lin(rows, D, KV, false), lin(rows, Q, D, true)
	r.gate, r.up, r.down = lin(rows, D, F, false), lin(rows, D, F, false), lin(rows, F, D, true)
	r.glu = newK(kernel.Gate{Rows: rows, Cols: F})
	r.head = lin(d.batch, D, V, false)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if r.flash, err = attention.New(attention.Shape{Batch: d.batch, Len: L, Heads: c.NHead, KVHeads: c.KVHeads(), HeadDim: hd}, attention.Options{}); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	r.pos = make([]int32, rows)
	attention.Positions(r.pos, d.batch, L, nil)
	f := func(n int) []float32 { return make([]float32, n) }
	r.h, r.h2, r.n = f(rows*D), f(rows*D), f(rows*D)
	r.qs, r.ks, r.vs, r.a = f(rows*Q), f(rows*KV), f(rows*KV), f(rows*Q)
	r.g, r.u, r.y = f(rows*F), f(rows*F), f(rows*F)
	r.hf, r.logits = f(d.batch*D), f(d.batch*V)
	return r, nil
}

func (r *llamaRun) with(bufs ...[]float32) [][]float32 {
	r.args = append(r.args[:0], bufs...)
	return r.args
}

// headWeight is the LM head: lm_head.weight, or the embedding when tied.
func (m *Llama) headWeight() *Param {
	if m.head != nil {
		return m.head
	}
	return m.emb
}

// forward advances every row from position 0 by r.L tokens (ids (Batch, L)), filling the cache,
// and returns the logits after the last one.
func (d *LlamaDecoder) forward(r *llamaRun, ids []int32) []float32 {
	c := d.m.cfg
	D, L, H, KVH := c.DModel, r.L, c.NHead, c.KVHeads()
	for i, t := range ids {
		copy(r.h[i*D:(i+1)*D], d.m.emb.Value[int(t)*D:])
	}
	for l := range d.m.blocks {
		b := &d.m.blocks[l]
		r.norm.Forward(r.with(r.h, b.attnNorm.Value), r.n)
		r.q.Forward(r.with(r.n, b.q.Value), r.qs)
		r.k.Forward(r.with(r.n, b.k.Value), r.ks)
		r.v.Forward(r.with(r.n, b.v.Value), r.vs)
		must(d.rope.Forward(r.qs, r.qs, r.pos, H))
		must(d.rope.Forward(r.ks, r.ks, r.pos, KVH))
		must(r.flash.Forward(attention.Inputs[float32]{Q: r.qs, K: r.ks, V: r.vs}, r.a))
		for row := range d.batch {
			dst := row * d.capacity * r.kvdim
			copy(d.kc[l][dst:dst+L*r.kvdim], r.ks[row*L*r.kvdim:])
			copy(d.vc[l][dst:dst+L*r.kvdim], r.vs[row*L*r.kvdim:])
		}
		r.o.Forward(r.with(r.a, b.o.Value, r.h), r.h2)
		r.h, r.h2 = r.h2, r.h
		r.norm.Forward(r.with(r.h, b.mlpNorm.Value), r.n)
		r.gate.Forward(r.with(r.n, b.gate.Value), r.g)
		r.up.Forward(r.with(r.n, b.up.Value), r.u)
		r.glu.Forward(r.with(r.u, r.g), r.y)
		r.down.Forward(r.with(r.y, b.down.Value, r.h), r.h2)
		r.h, r.h2 = r.h2, r.h
	}
	d.pos += L
	for i := range d.batch {
		copy(r.hf[i*D:(i+1)*D], r.h[((i+1)*L-1)*D:])
	}
	r.normF.Forward(r.with(r.hf, d.m.norm.Value), r.hf)
	r.head.Forward(r.with(r.hf, d.m.headWeight().Value), r.logits)
	return r.logits
}

// must panics on an error the kernels return only for arguments this package never gives them.
func must(err error) {
	if err != nil {
		panic(err)
	}
}

// llamaStepper is the decoder's one-token step (see LlamaDecoder).
type llamaStepper struct {
	d                *LlamaDecoder
	team             *parallel.Team
	h, n             []float32 // (B, D)
	q, a             []float32 // (B, H·hd)
	g, u             []float32 // (B, F): silu(gate)·up, then up
	logits           []float32 // (B, V)
	phase, layer, at int       // at: the position of the step
	body             parallel.BodyFunc
}

// Phases of a Transformer++ step.
const (
	llamaQKV = iota
	llamaO
	llamaGU
	llamaDown
	llamaHead
)

// llamaRows is the number of weight rows of one block of the O, GU, down and head phases.
const llamaRows = 16

func newLlamaStepper(d *LlamaDecoder) *llamaStepper {
	c := d.m.cfg
	B, D, F, V, Q := d.batch, c.DModel, c.FF(), c.PaddedVocab(), c.NHead*c.HeadSize()
	f := func(n int) []float32 { return make([]float32, n) }
	s := &llamaStepper{d: d, team: parallel.NewTeam(0), h: f(B * D), n: f(B * D), q: f(B * Q), a: f(B * Q), g: f(B * F), u: f(B * F), logits: f(B * V)}
	s.body = s.item
	return s
}

// step advances every row by the tokens ids (one per row) at position d.pos and returns the
// logits, (B, V).
func (s *llamaStepper) step(ids []int32) []float32 {
	d, c := s.d, s.d.m.cfg
	D, F, V := c.DModel, c.FF(), c.PaddedVocab()
	s.at = d.pos
	for i, t := range ids {
		copy(s.h[i*D:(i+1)*D], d.m.emb.Value[int(t)*D:])
	}
	eps := float32(c.NormEps)
	blocks := func(n int) int { return (n + llamaRows - 1) / llamaRows }
	for l := range d.m.blocks {
		b := &d.m.blocks[l]
		s.layer = l
		s.norm(b.attnNorm, eps)
		s.run(llamaQKV, c.NHead+2*c.KVHeads())
		must(d.att.Step(s.a, s.q, d.kc[l], d.vc[l], s.at+1))
		s.run(llamaO, blocks(D))
		s.norm(b.mlpNorm, eps)
		s.run(llamaGU, blocks(F))
		s.run(llamaDown, blocks(D))
	}
	s.norm(d.m.norm, eps)
	s.run(llamaHead, blocks(V))
	return s.logits
}

// norm sets n = RMSNorm(h; w) row by row.
func (s *llamaStepper) norm(w *Param, eps float32) {
	D := s.d.m.cfg.DModel
	for r := range s.d.batch {
		kernel.RMSNormRow(s.n[r*D:(r+1)*D], s.h[r*D:(r+1)*D], w.Value, eps)
	}
}

func (s *llamaStepper) run(phase, n int) {
	s.phase = phase
	s.team.Run(s.body, n, 0)
}

func (s *llamaStepper) item(_, i int) {
	switch s.phase {
	case llamaQKV:
		s.qkv(i)
	case llamaO:
		s.rows(i, s.d.m.blocks[s.layer].o, s.a, s.h, true)
	case llamaGU:
		s.gateUp(i)
	case llamaDown:
		s.rows(i, s.d.m.blocks[s.layer].down, s.g, s.h, true)
	case llamaHead:
		s.rows(i, s.d.m.headWeight(), s.n, s.logits, false)
	}
}

// qkv is the QKV phase for head i of q (i < H), of k (then i − H < KV) or of v: its HeadDim
// outputs of every row, rotated to the step's position for q and k, written into the cache for k
// and v.
func (s *llamaStepper) qkv(i int) {
	d, c := s.d, s.d.m.cfg
	D, H, KVH, hd := c.DModel, c.NHead, c.KVHeads(), c.HeadSize()
	b := &d.m.blocks[s.layer]
	w, dst, ld, head, rotate := b.q.Value, s.q, H*hd, i, true
	switch {
	case i >= H+KVH:
		w, dst, ld, head, rotate = b.v.Value, d.vc[s.layer][s.at*KVH*hd:], d.capacity*KVH*hd, i-H-KVH, false
	case i >= H:
		w, dst, ld, head = b.k.Value, d.kc[s.layer][s.at*KVH*hd:], d.capacity*KVH*hd, i-H
	}
	rowDots(dst, s.n, w, nil, d.batch, D, ld, head*hd, (head+1)*hd, false)
	if rotate {
		for r := range d.batch {
			d.rope.Rotate(dst[r*ld+head*hd:][:hd], s.at, 1)
		}
	}
}

// rows computes block i of the outputs y = x·pᵀ for the weight rows of the block, added to y with
// add: h += a·o_projᵀ, h += y·down_projᵀ, or the logits.
func (s *llamaStepper) rows(i int, p *Param, x, y []float32, add bool) {
	rowDots(y, x, p.Value, nil, s.d.batch, p.Shape[1], p.Shape[0], i*llamaRows, (i+1)*llamaRows, add)
}

// gateUp is block i of the GU phase: g = silu(n·gate_projᵀ) ⊙ n·up_projᵀ for its rows of the
// two weights (kernel.GateRow, the training kernel's row).
func (s *llamaStepper) gateUp(i int) {
	d, c := s.d, s.d.m.cfg
	D, F := c.DModel, c.FF()
	b := &d.m.blocks[s.layer]
	j0, j1 := i*llamaRows, min(F, (i+1)*llamaRows)
	rowDots(s.g, s.n, b.gate.Value, nil, d.batch, D, F, j0, j1, false)
	rowDots(s.u, s.n, b.up.Value, nil, d.batch, D, F, j0, j1, false)
	for r := range d.batch {
		kernel.GateRow(s.g[r*F+j0:r*F+j1], s.u[r*F+j0:r*F+j1], s.g[r*F+j0:r*F+j1])
	}
}

// NewGenerator is NewDecoder as a Generator.
func (m *Llama) NewGenerator(batch, capacity int) (Generator, error) {
	d, err := m.NewDecoder(batch, capacity)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Generate continues batch prompts (prompt is (batch, L), row-major) by n tokens each and returns
// the new tokens, (batch, n): the prompt through the flash attention kernel (Prefill), each new
// token through one Step over the key/value cache.
func (m *Llama) Generate(prompt []int32, batch, n int, s Sampling) ([]int32, error) {
	return generate(m, prompt, batch, n, s)
}
