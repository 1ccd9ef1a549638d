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
	// Resets fills Batch.Resets from the shard's document boundaries and
	// sets to -1 the targets that are the first token of a document (the
	// state that would predict them was reset: they belong to no document).
	Resets bool
	// Prefetch is the number of batches a background goroutine prepares
	// ahead (0 = none).
	Prefetch int
	// Expect is what the shard must be (zero fields: anything).
	Expect shard.Expect
	// Verify reads every shard once when opening: its checksum, and every
	// token inside the vocabulary (shard.Shard.Verify).
	Verify bool
}

// Loader is a Source of (Batch, Len+1) windows w of memory-mapped shards:
// Inputs = w[:Len], Targets = w[1:]. Tokens are copied straight from the
// mapping into the batch, so windows of 2^20 tokens cost one copy and the
// corpus is never loaded into the heap.
type Loader struct {
	*Stream
	w *windows
}

// Open opens path as a Loader: one shard file, or a directory whose *.tok
// files are the shards of one split, read as one sequence in name order (a
// window may span two files; the cursor counts windows of the whole).
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
	sh, err := openShards(path, o.Expect, o.Verify)
	if err != nil {
		return nil, err
	}
	if sh.Len() < int64(o.Len)+1 {
		sh.Close()
		return nil, fmt.Errorf("data: %s has %d tokens, fewer than one window of length %d + 1", path, sh.Len(), o.Len)
	}
	w := &windows{sh: sh, o: o, n: (sh.Len() - 1) / int64(o.Len)}
	kind := "shard"
	if len(sh.list) > 1 {
		kind = fmt.Sprintf("shards[%d]", len(sh.list))
	}
	w.id = fmt.Sprintf("%s:%x:%s:seed=%d:batch=%d:len=%d:passes=%d", kind, sh.h.Checksum[:8], o.Order, o.Seed, o.Batch, o.Len, o.Passes)
	st, err := NewStream(w, o.Prefetch)
	if err != nil {
		sh.Close()
		return nil, err
	}
	return &Loader{Stream: st, w: w}, nil
}

// Header describes the data: the shard's header, or for a directory the
// common modality, vocabulary and tokenizer with tokens, documents and units
// summed (and a checksum of the shards' checksums).
func (l *Loader) Header() shard.Header { return l.w.sh.h }

// Windows returns the number of windows in one sequential pass, (N-1)/Len.
func (l *Loader) Windows() int64 { return l.w.n }

// windows is the Loader's Generator.
type windows struct {
	sh *shards
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
			docs := w.sh.docs
			i, _ := slices.BinarySearch(docs, start) // first document starting at or after start
			for ; i < len(docs) && docs[i] <= start+int64(L); i++ {
				if t := docs[i] - start; t < int64(L) {
					rs[t] = 1
				}
				if t := docs[i] - start; t > 0 {
					tg[t-1] = -1
				}
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
