package kernel

import (
	"errors"
	"fmt"
	"slices"
)

// Resets holds the document starts of a batch of packed sequences for one
// step (data.Batch.Resets): Batch·Len flags, token-major, non-zero where a
// document starts at step t of row b. The Scan zeroes the state entering such
// a step and the Conv1d reads nothing before it, so no document sees another.
// Like IDs, it is set outside the graph before every run; a Resets never Set,
// or Set to nil, holds one document per row.
type Resets struct {
	flags []uint8
	any   bool // some flag is non-zero
}

// NewResets makes a holder for the flags of n tokens.
func NewResets(n int) (*Resets, error) {
	if n < 1 || n > MaxElems {
		return nil, fmt.Errorf("kernel: resets: count %d must be in [1, %d]", n, MaxElems)
	}
	return &Resets{flags: make([]uint8, n)}, nil
}

// Len is the number of flags, Batch·Len of the ops that read them.
func (r *Resets) Len() int { return len(r.flags) }

// Set copies the flags v in; nil clears them (one document per row). On
// error the held flags are unchanged.
func (r *Resets) Set(v []uint8) error {
	switch {
	case r == nil:
		return errors.New("kernel: resets: Set on a nil *Resets (make it with NewResets)")
	case v == nil:
		clear(r.flags)
		r.any = false
		return nil
	case len(v) != len(r.flags):
		return fmt.Errorf("kernel: resets: got %d flags, want %d", len(v), len(r.flags))
	}
	copy(r.flags, v)
	r.any = slices.ContainsFunc(v, func(f uint8) bool { return f != 0 })
	return nil
}

// Fits reports resets (nil is fine) of another length than batch·length
// tokens, for the op's Validate.
func (r *Resets) Fits(op string, batch, length int) error {
	if r != nil && r.Len() != batch*length {
		return fmt.Errorf("%s: resets hold %d flags, want batch·len = %d·%d", op, r.Len(), batch, length)
	}
	return nil
}

// HeldResets is the copy of a Resets that a kernel takes at its forward, so
// that a Set between the forward and its backward cannot change the
// backward. Its zero value holds nothing.
type HeldResets struct {
	r     *Resets
	flags []uint8 // nil when r is nil or holds no document start
	buf   []uint8
}

// Hold makes the holder of r's flags (r may be nil: nothing is ever held).
func Hold(r *Resets) HeldResets {
	if r == nil {
		return HeldResets{}
	}
	return HeldResets{r: r, buf: make([]uint8, r.Len())}
}

// Take copies the flags of the Resets, for this forward and its backward.
func (h *HeldResets) Take() {
	h.flags = nil
	if h.r != nil && h.r.any {
		copy(h.buf, h.r.flags)
		h.flags = h.buf
	}
}

// Flags returns the flags taken last: nil when no document starts in the
// batch (or no Resets), else (Batch·Len) values owned by the holder.
func (h *HeldResets) Flags() []uint8 { return h.flags }
