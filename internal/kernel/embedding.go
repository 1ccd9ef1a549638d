package kernel

import (
	"errors"
	"fmt"

	"github.com/mambago/mamba/internal/parallel"
)

// Embedding gathers rows of a table (Vocab, Dim): out[r] = table[ids[r]],
// out (IDs.Len(), Dim). IDs must come from NewIDs (no ignore index) and its
// vocabulary must fit in the table's rows (which may be padded).
type Embedding struct {
	IDs        *IDs
	Vocab, Dim int
}

func (s Embedding) String() string {
	return fmt.Sprintf("Embedding{rows=%d,vocab=%d,dim=%d}", s.rows(), s.Vocab, s.Dim)
}

func (s Embedding) rows() int {
	if s.IDs == nil {
		return 0
	}
	return s.IDs.Len()
}

func (s Embedding) Inputs() [][]int { return [][]int{{s.Vocab, s.Dim}} }
func (s Embedding) Output() []int   { return []int{s.rows(), s.Dim} }

func (s Embedding) Validate() error {
	switch {
	case s.IDs == nil:
		return errors.New("kernel: Embedding: IDs is nil")
	case s.IDs.Targets():
		return errors.New("kernel: Embedding: the ids come from NewTargets; use NewIDs (no ignore index)")
	case s.IDs.Vocab() > s.Vocab:
		return fmt.Errorf("kernel: Embedding: ids vocabulary %d is larger than the table's %d rows", s.IDs.Vocab(), s.Vocab)
	}
	return validate(s, "vocab,dim", s.Vocab, s.Dim)
}

// Ready reports an error if the ids were never Set.
func (s Embedding) Ready() error { return s.IDs.Ready() }

// embedRows and embedVocab are the block sizes of the float32 kernel:
// positions per forward block, table rows per backward block.
const (
	embedRows  = 64
	embedVocab = 8
)

func (s Embedding) CPUKernel() Kernel[[]float32] {
	k := &embed32{s: s, held: hold(s.IDs), order: make([]int32, s.IDs.Len()), start: make([]int32, s.Vocab+1)}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}

// embed32 is the float32 kernel. Forward copies rows in parallel blocks. The
// forward also sorts the positions by id (a stable counting sort), so that
// the backward can run over blocks of table rows, each adding its rows'
// positions in position order: the sums never depend on the workers.
type embed32 struct {
	s Embedding
	held
	order    []int32 // positions sorted by id, stable
	start    []int32 // (Vocab+1) order[start[v]:start[v+1]] are the positions of id v
	job      parallel.Job
	fwd, bwd items
	table    []float32
	out, dy  []float32
	dt       []float32
	addT     bool // the backward adds to dtable
}

func (k *embed32) Forward(in [][]float32, out []float32) {
	k.take()
	clear(k.start)
	for _, id := range k.idx {
		k.start[id+1]++
	}
	for v := 1; v < len(k.start); v++ {
		k.start[v] += k.start[v-1]
	}
	next := k.start[:len(k.start)-1]
	for r, id := range k.idx {
		k.order[next[id]] = int32(r)
		next[id]++
	}
	// next has moved each start[v] to start[v+1]: shift back.
	copy(k.start[1:], k.start[:len(k.start)-1])
	k.start[0] = 0
	k.table, k.out = in[0], out
	run(&k.job, k.fwd, blocks(len(k.idx), embedRows))
	k.table, k.out = nil, nil
}

func (k *embed32) forwardItem(_, b int) {
	d := k.s.Dim
	lo, hi := span(b, embedRows, len(k.idx))
	for r := lo; r < hi; r++ {
		copy(k.out[r*d:(r+1)*d], k.table[int(k.idx[r])*d:])
	}
}

// Backward: out[r] = table[ids[r]] gives dtable[v] = Σ_{r: ids[r] = v} dout[r]
// (a scatter-add, rows added in position order).
func (k *embed32) Backward(in [][]float32, dy []float32, din [][]float32) {
	k.BackwardAdd(in, dy, din, nil)
}

// Accumulates: the table (tied to the LM head, whose weight gradient comes first).
func (k *embed32) Accumulates(i int) bool { return i == 0 }

func (k *embed32) BackwardAdd(_ [][]float32, dy []float32, din [][]float32, add []bool) {
	if din[0] == nil {
		return
	}
	k.dy, k.dt, k.addT = dy, din[0], adds(add, 0)
	run(&k.job, k.bwd, blocks(k.s.Vocab, embedVocab))
	k.dy, k.dt = nil, nil
}

func (k *embed32) backwardItem(_, b int) {
	d := k.s.Dim
	lo, hi := span(b, embedVocab, k.s.Vocab)
	if !k.addT {
		clear(k.dt[lo*d : hi*d])
	}
	for v := lo; v < hi; v++ {
		dst := k.dt[v*d : (v+1)*d]
		for _, r := range k.order[k.start[v]:k.start[v+1]] {
			src := k.dy[int(r)*d:][:d]
			for j, g := range src {
				dst[j] += g
			}
		}
	}
}

func (s Embedding) ReferenceKernel() Kernel[[]float64] { return &embedRef{s: s, held: hold(s.IDs)} }

// embedRef is the float64 reference.
type embedRef struct {
	s Embedding
	held
}

func (k *embedRef) Forward(in [][]float64, out []float64) {
	k.take()
	d := k.s.Dim
	for r, id := range k.idx {
		copy(out[r*d:(r+1)*d], in[0][int(id)*d:(int(id)+1)*d])
	}
}

func (k *embedRef) Backward(_ [][]float64, dy []float64, din [][]float64) {
	if din[0] == nil {
		return
	}
	clear(din[0])
	d := k.s.Dim
	for r, id := range k.idx {
		for j := 0; j < d; j++ {
			din[0][int(id)*d+j] += dy[r*d+j]
		}
	}
}
