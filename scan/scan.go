package scan

import (
	"fmt"
	"math"
)

// DefaultChunk is the number of timesteps between saved states when Options.Chunk is 0.
const DefaultChunk = 64

// Shape gives the sizes of one selective scan: Batch b, sequence length Len L,
// Channels d (d_inner of the Mamba block) and State N.
type Shape struct{ Batch, Len, Channels, State int }

// Options configure a kernel. None of them changes the mathematical result; Workers never changes
// a single bit of it.
type Options struct {
	Softplus bool // Δ = softplus(δ + bias) (identity above 20); else Δ = δ + bias
	Chunk    int  // timesteps between saved states; 0 = DefaultChunk
	Workers  int  // goroutines; 0 = GOMAXPROCS. Never changes results.
}

// Inputs of a selective scan, token-major:
// U, Delta, Z: (Batch, Len, Channels); A: (Channels, State); B, C: (Batch, Len, State);
// D, DeltaBias: (Channels); H0: (Batch, Channels, State); Resets: (Batch, Len). D, Z,
// DeltaBias, H0 and Resets may be nil (no skip term, no gate, zero bias, zero initial state,
// one document per row).
//
// Resets marks packed documents: Resets[b·Len + t] ≠ 0 where a document starts at step t of
// row b (data.Batch.Resets has this layout and meaning). The state entering that step is zero
// instead of h_{t−1} (H0 at t = 0), so nothing flows across the boundary, forward or backward.
type Inputs[T float32 | float64] struct {
	U, Delta, A, B, C, D, Z, DeltaBias, H0 []T
	Resets                                 []uint8
}

// Grads receives the gradients of a loss with respect to the inputs. Each non-nil field is
// overwritten with d(loss)/d(that input), same shape as the input. The gradients of D, DeltaBias
// and H0 are defined (and computed) when the input itself is nil: they are taken at zero.
// Z is the exception: a gradient for an absent gate is an error.
type Grads[T float32 | float64] struct{ U, Delta, A, B, C, D, Z, DeltaBias, H0 []T }

// Kernel is implemented by the fast float32 kernel and by the float64 sequential reference.
// A Kernel holds its scratch and saved states and is reused step after step; it is not safe for
// concurrent use. Outputs and gradients must not alias inputs.
type Kernel[T float32 | float64] interface {
	Shape() Shape
	// Forward writes out (Batch, Len, Channels) and, if last != nil, the final state
	// (Batch, Channels, State), and keeps what Backward needs (only chunk-boundary states).
	Forward(in Inputs[T], out, last []T) error
	// Backward runs after Forward on the same inputs. dout is d(loss)/d(out); dlast (may be nil)
	// is the gradient flowing into the final state.
	Backward(in Inputs[T], dout, dlast []T, g Grads[T]) error
}

func (s Shape) validate() error {
	if s.Batch < 1 || s.Len < 1 || s.Channels < 1 || s.State < 1 {
		return fmt.Errorf("scan: shape %+v: every size must be at least 1", s)
	}
	// Every count the kernels use (the full state history (Batch, Len+1, Channels, State) is the
	// largest) must fit an int.
	if !fits(s.Batch, s.Len+1, s.Channels, s.State) {
		return fmt.Errorf("scan: shape %+v is too large", s)
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

func (o Options) validate() error {
	if o.Chunk < 0 {
		return fmt.Errorf("scan: Options.Chunk = %d, want >= 0 (0 = default %d)", o.Chunk, DefaultChunk)
	}
	if o.Workers < 0 {
		return fmt.Errorf("scan: Options.Workers = %d, want >= 0 (0 = GOMAXPROCS)", o.Workers)
	}
	return nil
}

// kind names the shape of a slice argument.
type kind int

const (
	tokens   kind = iota // (Batch, Len, Channels)
	rows                 // (Batch, Len, State)
	states               // (Batch, Channels, State)
	params               // (Channels, State)
	channels             // (Channels)
)

// describe says how the element count of a kind is made, for error messages.
func (s Shape) describe(k kind) string {
	switch k {
	case tokens:
		return fmt.Sprintf("Batch*Len*Channels = %d*%d*%d", s.Batch, s.Len, s.Channels)
	case rows:
		return fmt.Sprintf("Batch*Len*State = %d*%d*%d", s.Batch, s.Len, s.State)
	case states:
		return fmt.Sprintf("Batch*Channels*State = %d*%d*%d", s.Batch, s.Channels, s.State)
	case params:
		return fmt.Sprintf("Channels*State = %d*%d", s.Channels, s.State)
	}
	return fmt.Sprintf("Channels = %d", s.Channels)
}

// slot is one slice argument: its name, its kind and whether it may be nil.
type slot[T float32 | float64] struct {
	name     string
	x        []T
	k        kind
	optional bool
}

// checkSlots returns an error naming the first slice whose length is wrong.
func checkSlots[T float32 | float64](s Shape, slots ...slot[T]) error {
	for _, c := range slots {
		if c.x == nil && c.optional {
			continue
		}
		if want := s.count(c.k); len(c.x) != want {
			return fmt.Errorf("scan: %s has length %d, want %d (%s)", c.name, len(c.x), want, s.describe(c.k))
		}
	}
	return nil
}

// count is the element count of a kind.
func (s Shape) count(k kind) int {
	switch k {
	case tokens:
		return s.Batch * s.Len * s.Channels
	case rows:
		return s.Batch * s.Len * s.State
	case states:
		return s.Batch * s.Channels * s.State
	case params:
		return s.Channels * s.State
	}
	return s.Channels
}

func checkInputs[T float32 | float64](s Shape, in Inputs[T]) error {
	if in.Resets != nil && len(in.Resets) != s.Batch*s.Len {
		return fmt.Errorf("scan: Inputs.Resets has length %d, want %d (Batch*Len = %d*%d)",
			len(in.Resets), s.Batch*s.Len, s.Batch, s.Len)
	}
	return checkSlots(s,
		slot[T]{"Inputs.U", in.U, tokens, false},
		slot[T]{"Inputs.Delta", in.Delta, tokens, false},
		slot[T]{"Inputs.A", in.A, params, false},
		slot[T]{"Inputs.B", in.B, rows, false},
		slot[T]{"Inputs.C", in.C, rows, false},
		slot[T]{"Inputs.D", in.D, channels, true},
		slot[T]{"Inputs.Z", in.Z, tokens, true},
		slot[T]{"Inputs.DeltaBias", in.DeltaBias, channels, true},
		slot[T]{"Inputs.H0", in.H0, states, true})
}

func checkForward[T float32 | float64](s Shape, in Inputs[T], out, last []T) error {
	if err := checkInputs(s, in); err != nil {
		return err
	}
	return checkSlots(s, slot[T]{"out", out, tokens, false}, slot[T]{"last", last, states, true})
}

func checkBackward[T float32 | float64](s Shape, in Inputs[T], dout, dlast []T, g Grads[T]) error {
	if err := checkInputs(s, in); err != nil {
		return err
	}
	if g.Z != nil && in.Z == nil {
		return fmt.Errorf("scan: Grads.Z is set but Inputs.Z is nil (no gate, no gradient)")
	}
	return checkSlots(s,
		slot[T]{"dout", dout, tokens, false},
		slot[T]{"dlast", dlast, states, true},
		slot[T]{"Grads.U", g.U, tokens, true},
		slot[T]{"Grads.Delta", g.Delta, tokens, true},
		slot[T]{"Grads.A", g.A, params, true},
		slot[T]{"Grads.B", g.B, rows, true},
		slot[T]{"Grads.C", g.C, rows, true},
		slot[T]{"Grads.D", g.D, channels, true},
		slot[T]{"Grads.Z", g.Z, tokens, true},
		slot[T]{"Grads.DeltaBias", g.DeltaBias, channels, true},
		slot[T]{"Grads.H0", g.H0, states, true})
}
