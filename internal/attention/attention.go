package attention

import (
	"fmt"
	"math"
)

// DefaultTile is the number of query rows and of key rows of one tile when Options.Tile is 0.
const DefaultTile = 64

// Shape gives the sizes of one causal attention call: Batch sequences of Len tokens, Heads query
// heads sharing KVHeads key/value heads (KVHeads divides Heads: query head h reads key/value head
// h/(Heads/KVHeads), as transformers' repeat_kv), each of HeadDim channels.
type Shape struct {
	Batch, Len     int
	Heads, KVHeads int
	HeadDim        int
}

// Options configure a kernel. Tile changes the rounding of the float32 kernel, never the
// mathematical result; Workers never changes a single bit of it.
type Options struct {
	Tile    int // query and key rows per tile; 0 = DefaultTile
	Workers int // goroutines; 0 = GOMAXPROCS
}

// Inputs of an attention call, token-major (row b·Len + t is token t of sequence b):
// Q (Batch·Len, Heads·HeadDim); K, V (Batch·Len, KVHeads·HeadDim); head h of a row is its columns
// [h·HeadDim, (h+1)·HeadDim). Resets (Batch·Len) may be nil; Resets[b·Len+t] ≠ 0 marks token t as
// the first of a document, and a query then sees only the keys of its own document (the
// packed-document mask; position 0 of a row starts a document anyway).
type Inputs[T float32 | float64] struct {
	Q, K, V []T
	Resets  []uint8
}

// Grads receives the gradients of a loss with respect to Q, K and V; each non-nil field is
// overwritten with d(loss)/d(that input), same shape as the input.
type Grads[T float32 | float64] struct{ Q, K, V []T }

// Kernel is implemented by the fast float32 kernel (Flash) and by the float64 reference
// (Reference). A Kernel holds its scratch and what Forward keeps for Backward and is reused call
// after call; it is not safe for concurrent use. Outputs and gradients must not alias inputs.
type Kernel[T float32 | float64] interface {
	Shape() Shape
	// Forward writes out (Batch·Len, Heads·HeadDim) and keeps the row log-sum-exps.
	Forward(in Inputs[T], out []T) error
	// Backward runs after Forward on the same inputs; out is Forward's output and dout is
	// d(loss)/d(out).
	Backward(in Inputs[T], out, dout []T, g Grads[T]) error
}

// Scale is the softmax temperature 1/√HeadDim.
func (s Shape) Scale() float64 { return 1 / math.Sqrt(float64(s.HeadDim)) }

// Group is the number of query heads that share one key/value head, Heads/KVHeads.
func (s Shape) Group() int { return s.Heads / s.KVHeads }

func (s Shape) validate() error {
	if s.Batch < 1 || s.Len < 1 || s.Heads < 1 || s.KVHeads < 1 || s.HeadDim < 1 {
		return fmt.Errorf("attention: shape %+v: every size must be at least 1", s)
	}
	if s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("attention: shape %+v: KVHeads %d does not divide Heads %d", s, s.KVHeads, s.Heads)
	}
	// The largest counts: the queries, and the float64 reference's L×L matrix.
	if !fits(s.Batch, s.Len, s.Heads, s.HeadDim) || !fits(s.Len, s.Len) || s.Len > math.MaxInt32 {
		return fmt.Errorf("attention: shape %+v is too large", s)
	}
	return nil
}

func (o Options) validate() error {
	if o.Tile < 0 {
		return fmt.Errorf("attention: Options.Tile = %d, want >= 0 (0 = default %d)", o.Tile, DefaultTile)
	}
	if o.Workers < 0 {
		return fmt.Errorf("attention: Options.Workers = %d, want >= 0 (0 = GOMAXPROCS)", o.Workers)
	}
	return nil
}

// fits reports whether the product of the positive factors fits in an int.
func fits(f ...int) bool {
	p := 1
	for _, x := range f {
		if p > math.MaxInt/x {
			return false
		}
		p *= x
	}
	return true
}

// kind names the shape of a slice argument, for error messages.
type kind int

const (
	queryRows kind = iota // (Batch·Len, Heads·HeadDim)
	keyRows               // (Batch·Len, KVHeads·HeadDim)
	stepRows              // (Batch, Heads·HeadDim): the queries of a decode step
)

// count is the element count of a kind.
func (s Shape) count(k kind) int {
	switch k {
	case queryRows:
		return s.Batch * s.Len * s.Heads * s.HeadDim
	case keyRows:
		return s.Batch * s.Len * s.KVHeads * s.HeadDim
	}
	return s.Batch * s.Heads * s.HeadDim
}

// describe says how the element count of a kind is made.
func (s Shape) describe(k kind) string {
	switch k {
	case queryRows:
		return fmt.Sprintf("Batch·Len·Heads·HeadDim = %d·%d·%d·%d", s.Batch, s.Len, s.Heads, s.HeadDim)
	case keyRows:
		return fmt.Sprintf("Batch·Len·KVHeads·HeadDim = %d·%d·%d·%d", s.Batch, s.Len, s.KVHeads, s.HeadDim)
	}
	return fmt.Sprintf("Batch·Heads·HeadDim = %d·%d·%d", s.Batch, s.Heads, s.HeadDim)
}

// check returns an error naming x unless it has the length of kind k (nil is allowed when
// optional).
func check[T float32 | float64](s Shape, name string, x []T, k kind, optional bool) error {
	if (x == nil && optional) || len(x) == s.count(k) {
		return nil
	}
	return fmt.Errorf("attention: %s has length %d, want %d (%s)", name, len(x), s.count(k), s.describe(k))
}

func checkInputs[T float32 | float64](s Shape, in Inputs[T]) error {
	if err := check(s, "Inputs.Q", in.Q, queryRows, false); err != nil {
		return err
	}
	if err := check(s, "Inputs.K", in.K, keyRows, false); err != nil {
		return err
	}
	if err := check(s, "Inputs.V", in.V, keyRows, false); err != nil {
		return err
	}
	if in.Resets != nil && len(in.Resets) != s.Batch*s.Len {
		return fmt.Errorf("attention: Inputs.Resets has length %d, want %d (Batch·Len = %d·%d)", len(in.Resets), s.Batch*s.Len, s.Batch, s.Len)
	}
	return nil
}

func checkForward[T float32 | float64](s Shape, in Inputs[T], out []T) error {
	if err := checkInputs(s, in); err != nil {
		return err
	}
	return check(s, "out", out, queryRows, false)
}

func checkBackward[T float32 | float64](s Shape, in Inputs[T], out, dout []T, g Grads[T]) error {
	if err := checkForward(s, in, out); err != nil {
		return err
	}
	if err := check(s, "dout", dout, queryRows, false); err != nil {
		return err
	}
	if err := check(s, "Grads.Q", g.Q, queryRows, true); err != nil {
		return err
	}
	if err := check(s, "Grads.K", g.K, keyRows, true); err != nil {
		return err
	}
	return check(s, "Grads.V", g.V, keyRows, true)
}

// docStarts sets starts[b·L+t] to the position in its row of the first token of token t's
// document: the last t' ≤ t with resets[b·L+t'] ≠ 0, or 0.
func docStarts(starts []int32, resets []uint8, batch, L int) {
	for b := range batch {
		s := int32(0)
		for t := range L {
			if t > 0 && resets[b*L+t] != 0 {
				s = int32(t)
			}
			starts[b*L+t] = s
		}
	}
}
