package attention

import (
	"fmt"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/parallel"
)

// Spec is the attention of a Transformer++ block as one op of the kernel layer
// (kernel.CPUSpec, kernel.RefSpec): the rotary embedding folded into causal
// grouped-query attention,
//
//	out = Attention(RoPE(q), RoPE(k), v)
//
// with q (Batch·Len, Heads·HeadDim), k and v (Batch·Len, KVHeads·HeadDim) token-major, every
// sequence at positions 0 … Len−1 and RoPE the rotation of Rope (θ = RopeTheta; 0 leaves q and k
// as they are). Its gradients are Flash's (Reference's in float64) taken at the rotated q and k,
// then rotated back: dq = RoPE⁻¹(dq'), dk = RoPE⁻¹(dk'), since the rotation is orthogonal.
//
// With Resets (packed documents, set each step), a token attends only to its own document and its
// position is counted from the document's first token (Positions).
//
// The kernels keep, between Forward and Backward, the rotated q and k, the output (the backward
// needs O for D_i = dO_i·O_i, and the output buffer belongs to the executor) and the row
// log-sum-exps: 4·(2·Heads + KVHeads)·HeadDim + 4·Heads bytes per token in float32.
type Spec struct {
	Batch, Len, Heads, KVHeads, HeadDim int
	RopeTheta                           float64
	Resets                              *kernel.Resets // document starts, (Batch·Len); nil: one document per sequence
}

var (
	_ kernel.CPUSpec = Spec{}
	_ kernel.RefSpec = Spec{}
)

func (s Spec) String() string {
	return fmt.Sprintf("Attention{batch=%d,len=%d,heads=%d,kv_heads=%d,head_dim=%d,rope_theta=%g,resets=%t}", s.Batch, s.Len, s.Heads, s.KVHeads, s.HeadDim, s.RopeTheta, s.Resets != nil)
}

func (s Spec) shape() Shape {
	return Shape{Batch: s.Batch, Len: s.Len, Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim}
}

func (s Spec) Inputs() [][]int {
	rows := s.Batch * s.Len
	return [][]int{{rows, s.Heads * s.HeadDim}, {rows, s.KVHeads * s.HeadDim}, {rows, s.KVHeads * s.HeadDim}}
}

func (s Spec) Output() []int { return []int{s.Batch * s.Len, s.Heads * s.HeadDim} }

// Validate checks the sizes, that every buffer has at most kernel.MaxElems elements and, with a
// rotary embedding, its head size and θ.
func (s Spec) Validate() error {
	if err := s.shape().validate(); err != nil {
		return err
	}
	if err := s.Resets.Fits("attention", s.Batch, s.Len); err != nil {
		return err
	}
	for _, shape := range append(s.Inputs(), s.Output()) {
		if !fits(shape...) || kernel.Size(shape) > kernel.MaxElems {
			return fmt.Errorf("attention: %s: a buffer of shape %v exceeds %d elements", s, shape, kernel.MaxElems)
		}
	}
	if s.RopeTheta != 0 {
		return checkRope(s.HeadDim, s.Len, s.RopeTheta)
	}
	return nil
}

// rope returns the rotary tables of s and the positions 0 … Len−1 of every sequence, or nil
// without a rotation.
func (s Spec) rope() (*Rope, []int32) {
	if s.RopeTheta == 0 {
		return nil, nil
	}
	r, err := NewRope(s.HeadDim, s.Len, s.RopeTheta)
	if err != nil {
		panic(err) // Validate has accepted s
	}
	pos := make([]int32, s.Batch*s.Len)
	Positions(pos, s.Batch, s.Len, nil)
	return r, pos
}

// positions refreshes pos (nil without a rotation) for a forward whose
// document starts are resets (nil: one document per sequence).
func (s Spec) positions(pos []int32, resets []uint8) {
	if pos != nil && s.Resets != nil {
		Positions(pos, s.Batch, s.Len, resets)
	}
}

// copyBlock is the number of elements one item of specKernel's copy moves.
const copyBlock = 1 << 15

// CPUKernel returns the float32 kernel: the rotations (Rope), Flash, and a copy of the output
// kept for the backward, each parallel over items fixed by the shape.
func (s Spec) CPUKernel() kernel.Kernel[[]float32] {
	f, err := New(s.shape(), Options{})
	if err != nil {
		panic(err) // Validate has accepted s
	}
	k := &specKernel{s: s, flash: f, o: make([]float32, kernel.Size(s.Output())), held: kernel.Hold(s.Resets)}
	k.rope, k.pos = s.rope()
	if k.rope != nil {
		k.q, k.k = make([]float32, kernel.Size(s.Inputs()[0])), make([]float32, kernel.Size(s.Inputs()[1]))
	}
	k.body = k.copyItem
	return k
}

// specKernel is Spec's float32 kernel.
type specKernel struct {
	s        Spec
	held     kernel.HeldResets // the document starts of the last forward
	flash    *Flash
	rope     *Rope
	pos      []int32
	q, k, o  []float32 // the rotated q and k (nil without a rotation), the output
	job      parallel.Job
	body     parallel.BodyFunc
	dst, src []float32 // the running copy
}

func (k *specKernel) Forward(in [][]float32, out []float32) {
	q, kk := in[0], in[1]
	k.held.Take()
	k.s.positions(k.pos, k.held.Flags())
	if k.rope != nil {
		must(k.rope.Forward(k.q, q, k.pos, k.s.Heads))
		must(k.rope.Forward(k.k, kk, k.pos, k.s.KVHeads))
		q, kk = k.q, k.k
	}
	must(k.flash.Forward(Inputs[float32]{Q: q, K: kk, V: in[2], Resets: k.held.Flags()}, k.o))
	k.dst, k.src = out, k.o
	k.job.Run(k.body, (len(out)+copyBlock-1)/copyBlock, 0)
	k.dst, k.src = nil, nil
}

func (k *specKernel) copyItem(_, i int) {
	lo := i * copyBlock
	hi := min(len(k.dst), lo+copyBlock)
	copy(k.dst[lo:hi], k.src[lo:hi])
}

func (k *specKernel) Backward(in [][]float32, dout []float32, din [][]float32) {
	q, kk := in[0], in[1]
	if k.rope != nil {
		q, kk = k.q, k.k
	}
	must(k.flash.Backward(Inputs[float32]{Q: q, K: kk, V: in[2], Resets: k.held.Flags()}, k.o, dout, Grads[float32]{Q: din[0], K: din[1], V: din[2]}))
	if k.rope != nil && din[0] != nil {
		must(k.rope.Backward(din[0], din[0], k.pos, k.s.Heads))
	}
	if k.rope != nil && din[1] != nil {
		must(k.rope.Backward(din[1], din[1], k.pos, k.s.KVHeads))
	}
}

// must panics on an error the kernels return only for arguments a validated spec cannot give.
func must(err error) {
	if err != nil {
		panic(err)
	}
}

// ReferenceKernel returns the float64 kernel: RotateReference and Reference.
func (s Spec) ReferenceKernel() kernel.Kernel[[]float64] {
	r, err := NewReference(s.shape(), Options{})
	if err != nil {
		panic(err) // Validate has accepted s
	}
	k := &specRef{s: s, ref: r, o: make([]float64, kernel.Size(s.Output())), held: kernel.Hold(s.Resets)}
	k.rope, k.pos = s.rope()
	if k.rope != nil {
		k.q, k.k = make([]float64, kernel.Size(s.Inputs()[0])), make([]float64, kernel.Size(s.Inputs()[1]))
	}
	return k
}

// specRef is Spec's float64 kernel.
type specRef struct {
	s       Spec
	held    kernel.HeldResets
	ref     *Reference
	rope    *Rope
	pos     []int32
	q, k, o []float64
}

func (k *specRef) Forward(in [][]float64, out []float64) {
	q, kk := in[0], in[1]
	k.held.Take()
	k.s.positions(k.pos, k.held.Flags())
	if k.rope != nil {
		must(RotateReference(k.rope, k.q, q, k.pos, k.s.Heads, false))
		must(RotateReference(k.rope, k.k, kk, k.pos, k.s.KVHeads, false))
		q, kk = k.q, k.k
	}
	must(k.ref.Forward(Inputs[float64]{Q: q, K: kk, V: in[2], Resets: k.held.Flags()}, k.o))
	copy(out, k.o)
}

func (k *specRef) Backward(in [][]float64, dout []float64, din [][]float64) {
	q, kk := in[0], in[1]
	if k.rope != nil {
		q, kk = k.q, k.k
	}
	must(k.ref.Backward(Inputs[float64]{Q: q, K: kk, V: in[2], Resets: k.held.Flags()}, k.o, dout, Grads[float64]{Q: din[0], K: din[1], V: din[2]}))
	if k.rope != nil && din[0] != nil {
		must(RotateReference(k.rope, din[0], din[0], k.pos, k.s.Heads, true))
	}
	if k.rope != nil && din[1] != nil {
		must(RotateReference(k.rope, din[1], din[1], k.pos, k.s.KVHeads, true))
	}
}
