package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// embedParams mirrors EmbedParams in kernels/embed.cu.
type embedParams struct {
	table, dout, ids, offsets, order, out, dtable uint64
	rows, vocab, dim, pad                         int32
}

// Embedding gathers rows of a table (Vocab, Dim): out[r] = table[ids[r]]. SetIDs gives the ids of
// the next Forward and Backward. Input [table]; gradient [dtable], the rows of dout added per id in
// position order (no atomics: the ids are sorted on the host into per-id lists).
type Embedding struct {
	d                   *Device
	rows, vocab, dim    int
	ids, offsets, order Buffer
	hostOff, hostOrder  []int32 // per-id list offsets (vocab+1) and rows in id order (rows)
	hostFill            []int32 // next free slot of each id while filling hostOrder
	set                 bool
	fwd, bwd            function
	p                   embedParams
}

// NewEmbedding returns the lookup of rows ids in a vocab × dim table.
func (d *Device) NewEmbedding(rows, vocab, dim int) (*Embedding, error) {
	if rows < 1 || vocab < 1 || dim < 1 || !fits(math.MaxInt32, rows, dim) || !fits(math.MaxInt32, vocab, dim) {
		return nil, fmt.Errorf("cuda: Embedding: %d ids into %d × %d out of range", rows, vocab, dim)
	}
	k := &Embedding{d: d, rows: rows, vocab: vocab, dim: dim, fwd: d.function("embed_fwd"), bwd: d.function("embed_bwd"),
		hostOff: make([]int32, vocab+1), hostOrder: make([]int32, rows), hostFill: make([]int32, vocab)}
	var err error
	if k.ids, err = d.Alloc32(rows); err == nil {
		if k.offsets, err = d.Alloc32(vocab + 1); err == nil {
			k.order, err = d.Alloc32(rows)
		}
	}
	if err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Close frees the op's device memory.
func (k *Embedding) Close() error {
	return firstErr(k.d.Free(k.ids), k.d.Free(k.offsets), k.d.Free(k.order))
}

// SetIDs uploads ids (rows values in [0, vocab)) and their per-id lists: a stable counting sort,
// so each id's rows stay in position order.
func (k *Embedding) SetIDs(ids []int32) error {
	if len(ids) != k.rows {
		return fmt.Errorf("cuda: Embedding: %d ids, want %d", len(ids), k.rows)
	}
	off := k.hostOff
	clear(off)
	for r, v := range ids {
		if v < 0 || int(v) >= k.vocab {
			return fmt.Errorf("cuda: Embedding: id %d at row %d is outside [0, %d)", v, r, k.vocab)
		}
		off[v+1]++
	}
	for v := 1; v <= k.vocab; v++ {
		off[v] += off[v-1]
	}
	order, fill := k.hostOrder, k.hostFill
	copy(fill, off[:k.vocab])
	for r, v := range ids {
		order[fill[v]] = int32(r)
		fill[v]++
	}
	k.set = false
	if err := firstErr(Upload(k.d, k.ids, ids), Upload(k.d, k.offsets, off), Upload(k.d, k.order, order)); err != nil {
		return err
	}
	k.set = true
	return nil
}

// Forward writes out (rows, dim) from in = [table].
func (k *Embedding) Forward(in []Buffer, out Buffer) error {
	if err := countArgs("Embedding", "inputs", in, 1); err != nil {
		return err
	}
	if !k.set {
		return fmt.Errorf("cuda: Embedding: no ids (call SetIDs)")
	}
	n := k.rows * k.dim
	if err := firstErr(need("Embedding", "table", in[0], k.vocab*k.dim, 4, false), need("Embedding", "out", out, n, 4, false)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.p = embedParams{table: in[0].ptr, ids: k.ids.ptr, out: out.ptr, rows: int32(k.rows), vocab: int32(k.vocab), dim: int32(k.dim)}
	return d.launch(k.fwd.name, k.fwd.f, d.elems(n), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}

// Backward writes din = [dtable] (vocab, dim) from dout (rows, dim).
func (k *Embedding) Backward(_ []Buffer, dout Buffer, din []Buffer) error {
	if err := countArgs("Embedding", "gradients", din, 1); err != nil {
		return err
	}
	if !k.set {
		return fmt.Errorf("cuda: Embedding: no ids (call SetIDs)")
	}
	if err := firstErr(need("Embedding", "dout", dout, k.rows*k.dim, 4, false), need("Embedding", "dtable", din[0], k.vocab*k.dim, 4, true)); err != nil {
		return err
	}
	if din[0].Nil() {
		return nil
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.p = embedParams{dout: dout.ptr, offsets: k.offsets.ptr, order: k.order.ptr, dtable: din[0].ptr,
		rows: int32(k.rows), vocab: int32(k.vocab), dim: int32(k.dim)}
	blocks := k.vocab * ceilDiv(k.dim, 128)
	return d.launch(k.bwd.name, k.bwd.f, dim3{x: blocks}, dim3{x: 128}, 0, unsafe.Pointer(&k.p))
}
