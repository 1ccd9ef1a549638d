package data

// Batch is one training batch in token-major layout.
type Batch struct {
	Batch, Len int
	Inputs     []int32 // (Batch, Len)
	Targets    []int32 // (Batch, Len); -1 = ignored position
	// Resets is nil unless the source tracks document boundaries; then it is
	// (Batch, Len) and Resets[r*Len+t] = 1 when Inputs[r*Len+t] is the first
	// token of a document, so the scan state should be zeroed before it is
	// consumed (h_{t-1} := 0). Position 0 of a row is 1 only if a document
	// starts there; every row starts from a zero state anyway. A target that
	// is the first token of a document is then -1 (nothing predicts it).
	Resets []uint8
}

// Shape sizes b to (batch, length), reusing its slices when they are large
// enough; Resets is sized too when resets is true, and set to nil otherwise.
// Negative sizes count as 0.
func (b *Batch) Shape(batch, length int, resets bool) {
	batch, length = max(batch, 0), max(length, 0)
	n := batch * length
	b.Batch, b.Len = batch, length
	b.Inputs = grow(b.Inputs, n)
	b.Targets = grow(b.Targets, n)
	if resets {
		b.Resets = grow(b.Resets, n)
	} else {
		b.Resets = nil
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Source yields batches deterministically from its seed. Next fills b
// (reusing its slices) or returns an error (io.EOF when a finite pass is
// over). Cursor reports the position of the next batch, and Restore returns
// to a position saved earlier, so a resumed run sees exactly the batches the
// uninterrupted run would have seen.
type Source interface {
	Next(b *Batch) error
	Cursor() Cursor
	Restore(Cursor) error
	Close() error
}

// Cursor is a serialisable position in a Source (it marshals to JSON as
// {"source": ..., "step": ...}) and belongs in the training state.
// Source identifies the stream (data, seed, batch shape, order); a cursor
// only restores into a source with the same identity. Step counts the
// batches already delivered.
type Cursor struct {
	Source string `json:"source"`
	Step   uint64 `json:"step"`
}

// Generator makes the batches of a Stream. Fill must be a pure function of
// step (and the generator's fixed configuration): that is what makes a
// prefetched or resumed stream identical to a plain one. Fill is called
// from one goroutine at a time.
type Generator interface {
	// ID identifies the stream for Cursor.Source.
	ID() string
	// Fill writes batch number step into b, sizing it with b.Shape.
	// It returns io.EOF after the last batch of a finite stream.
	Fill(step uint64, b *Batch) error
	// Close releases the generator's resources.
	Close() error
}
