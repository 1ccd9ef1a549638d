package data

import (
	"fmt"
	"io"
	"slices"

	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/internal/rng"
)

// Order is how a Loader picks its windows.
type Order int

const (
	// Random draws every window start uniformly and independently from
	// (seed, step, row): windows may overlap and repeat.
	Random Order = iota
	// Sequential walks the shard in order: window k starts at token k·Len,
	// the (N-1)/Len windows of a pass cover it once, then it starts over.
	Sequential
)

func (o Order) String() string {
	if o == Sequential {
		return "sequential"
	}
	return "random"
}

// LoaderOptions configures Open.
type LoaderOptions struct {
	Batch, Len int // rows per batch, tokens per row
	Seed       uint64
	Order      Order
	// Passes (Sequential only) ends the stream with io.EOF after that many
	// passes; rows past the end of the last pass are padded with Inputs 0 and
	// Targets -1, so every batch keeps its shape. 0 = endless.
	Passes int
	// Resets fills Batch.Resets from the shard's document boundaries.
	Resets bool
	// Prefetch is the number of batches a background goroutine prepares
	// ahead (0 = none).
	Prefetch int
	// Expect is what the shard must be (zero fields: anything).
	Expect shard.Expect
	// Verify recomputes the shard checksum when opening (reads it all once).
	Verify bool
}

// Loader is a Source of (Batch, Len+1) windows w of a memory-mapped shard:
// Inputs = w[:Len], Targets = w[1:]. Tokens are copied straight from the
// mapping into the batch, so windows of 2^20 tokens cost one copy and the
// corpus is never loaded into the heap.
type Loader struct {
	*Stream
	w *windows
}

// Open opens the shard at path as a Loader.
func Open(path string, o LoaderOptions) (*Loader, error) {
	switch {
	case o.Batch < 1 || o.Len < 1:
		return nil, fmt.Errorf("data: batch %d and length %d must be positive", o.Batch, o.Len)
	case int64(o.Batch)*int64(o.Len) > 1<<31-1:
		return nil, fmt.Errorf("data: batch %d × length %d tokens exceeds 2^31-1", o.Batch, o.Len)
	case o.Order != Random && o.Order != Sequential:
		return nil, fmt.Errorf("data: unknown order %d", o.Order)
	case o.Passes < 0 || (o.Passes > 0 && o.Order != Sequential):
		return nil, fmt.Errorf("data: passes %d needs sequential order and must be non-negative", o.Passes)
	}
	sh, err := shard.Open(path, o.Expect)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Loader, error) {
		sh.Close()
		return nil, err
	}
	if o.Verify {
		if err := sh.Verify(); err != nil {
			return fail(err)
		}
	}
	if sh.Len() < int64(o.Len)+1 {
		return fail(fmt.Errorf("data: shard %s has %d tokens, fewer than one window of length %d + 1", path, sh.Len(), o.Len))
	}
	w := &windows{sh: sh, o: o, n: (sh.Len() - 1) / int64(o.Len)}
	h := sh.Header()
	w.id = fmt.Sprintf("shard:%x:%s:seed=%d:batch=%d:len=%d:passes=%d", h.Checksum[:8], o.Order, o.Seed, o.Batch, o.Len, o.Passes)
	st, err := NewStream(w, o.Prefetch)
	if err != nil {
		return fail(err)
	}
	return &Loader{Stream: st, w: w}, nil
}

// Shard returns the open shard (header, document index).
func (l *Loader) Shard() *shard.Shard { return l.w.sh }

// Windows returns the number of windows in one sequential pass, (N-1)/Len.
func (l *Loader) Windows() int64 { return l.w.n }

// windows is the Loader's Generator.
type windows struct {
	sh *shard.Shard
	o  LoaderOptions
	n  int64 // windows per sequential pass
	id string
}

func (w *windows) ID() string   { return w.id }
func (w *windows) Close() error { return w.sh.Close() }

// Fill writes batch step: row r is window step·Batch + r.
func (w *windows) Fill(step uint64, b *Batch) error {
	B, L := w.o.Batch, w.o.Len
	first := int64(step) * int64(B)
	if w.o.Passes > 0 && first >= int64(w.o.Passes)*w.n {
		return io.EOF
	}
	b.Shape(B, L, w.o.Resets)
	for r := range B {
		in, tg := b.Inputs[r*L:(r+1)*L], b.Targets[r*L:(r+1)*L]
		var rs []uint8
		if b.Resets != nil {
			rs = b.Resets[r*L : (r+1)*L]
			clear(rs)
		}
		start := w.start(step, r)
		if start < 0 {
			clear(in)
			for i := range tg {
				tg[i] = -1
			}
			continue
		}
		if err := w.sh.Read(in, start); err != nil {
			return err
		}
		copy(tg, in[1:])
		if err := w.sh.Read(tg[L-1:], start+int64(L)); err != nil {
			return err
		}
		if rs != nil {
			docs := w.sh.Docs()
			i, _ := slices.BinarySearch(docs, start) // first document starting at or after start
			for ; i < len(docs) && docs[i] < start+int64(L); i++ {
				rs[docs[i]-start] = 1
			}
		}
	}
	return nil
}

// start returns the first token of row r of batch step, or -1 for a
// padding row after the last pass.
func (w *windows) start(step uint64, r int) int64 {
	L := int64(w.o.Len)
	if w.o.Order == Random {
		g := rng.New(w.o.Seed, step, uint64(r))
		return int64(g.Intn(int(w.sh.Len() - L)))
	}
	k := int64(step)*int64(w.o.Batch) + int64(r)
	if w.o.Passes > 0 && k >= int64(w.o.Passes)*w.n {
		return -1
	}
	return k % w.n * L
}
