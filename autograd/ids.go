package autograd

import (
	"errors"
	"fmt"
)

// IgnoreIndex marks a target position that CrossEntropy leaves out.
const IgnoreIndex = -1

// Ids holds the token ids an Embedding gathers, or the targets a CrossEntropy
// scores, for one step. The graph reads them when it runs, so Set them before
// every run. Set validates them; an Ids never holds an invalid id.
type Ids struct {
	vals    []int32
	vocab   int
	targets bool // IgnoreIndex allowed
	set     bool
}

// NewIds makes a holder for n token ids in [0, vocab).
func NewIds(n, vocab int) (*Ids, error) { return newIds(n, vocab, false) }

// NewTargets makes a holder for n targets in [0, vocab) or IgnoreIndex.
func NewTargets(n, vocab int) (*Ids, error) { return newIds(n, vocab, true) }

func newIds(n, vocab int, targets bool) (*Ids, error) {
	if n < 1 || vocab < 1 {
		return nil, fmt.Errorf("autograd: ids: count %d and vocabulary size %d must be positive", n, vocab)
	}
	return &Ids{vals: make([]int32, n), vocab: vocab, targets: targets}, nil
}

// Len is the number of ids.
func (ids *Ids) Len() int { return len(ids.vals) }

// Vocab is the vocabulary size the ids are checked against.
func (ids *Ids) Vocab() int { return ids.vocab }

// Set copies v in after checking its length and that every id is in
// [0, vocab) (or IgnoreIndex, for targets). On error the held ids are
// unchanged.
func (ids *Ids) Set(v []int32) error {
	if ids == nil {
		return errors.New("autograd: ids: Set on a nil *Ids (make it with NewIds or NewTargets)")
	}
	if len(v) != len(ids.vals) {
		return fmt.Errorf("autograd: ids: got %d ids, want %d", len(v), len(ids.vals))
	}
	for i, id := range v {
		if (id < 0 || int(id) >= ids.vocab) && !(ids.targets && id == IgnoreIndex) {
			if ids.targets {
				return fmt.Errorf("autograd: ids: target %d at position %d is outside the vocabulary [0, %d) and is not the ignore index %d", id, i, ids.vocab, IgnoreIndex)
			}
			return fmt.Errorf("autograd: ids: id %d at position %d is outside the vocabulary [0, %d)", id, i, ids.vocab)
		}
	}
	copy(ids.vals, v)
	ids.set = true
	return nil
}

// held is the copy of an Ids that a kernel takes before its forward, so that
// a Set between the forward and its backward cannot change the backward.
type held struct {
	ids   *Ids
	idx   []int32
	count int // ids that are not IgnoreIndex
}

func hold(ids *Ids) held { return held{ids: ids, idx: make([]int32, ids.Len())} }

func (h *held) prepare() error {
	if !h.ids.set {
		return errors.New("ids were never Set")
	}
	copy(h.idx, h.ids.vals)
	h.count = 0
	for _, id := range h.idx {
		if id != IgnoreIndex {
			h.count++
		}
	}
	return nil
}
