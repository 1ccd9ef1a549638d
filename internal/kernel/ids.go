package kernel

import (
	"errors"
	"fmt"
)

// IgnoreIndex marks a target position that CrossEntropy leaves out.
const IgnoreIndex = -1

// IDs holds the token ids an Embedding gathers, or the targets a
// CrossEntropy scores, for one step. They are set outside the graph before
// every run; Set validates them, so an IDs never holds an invalid id.
type IDs struct {
	vals    []int32
	vocab   int
	targets bool // IgnoreIndex allowed
	set     bool
}

// NewIDs makes a holder for n token ids in [0, vocab).
func NewIDs(n, vocab int) (*IDs, error) { return newIDs(n, vocab, false) }

// NewTargets makes a holder for n targets in [0, vocab) or IgnoreIndex.
func NewTargets(n, vocab int) (*IDs, error) { return newIDs(n, vocab, true) }

func newIDs(n, vocab int, targets bool) (*IDs, error) {
	if n < 1 || vocab < 1 || n > MaxElems || vocab > MaxElems {
		return nil, fmt.Errorf("kernel: ids: count %d and vocabulary size %d must be in [1, %d]", n, vocab, MaxElems)
	}
	return &IDs{vals: make([]int32, n), vocab: vocab, targets: targets}, nil
}

// Len is the number of ids.
func (ids *IDs) Len() int { return len(ids.vals) }

// Vocab is the vocabulary size the ids are checked against.
func (ids *IDs) Vocab() int { return ids.vocab }

// Targets reports whether the holder takes targets (IgnoreIndex allowed).
func (ids *IDs) Targets() bool { return ids.targets }

// Values returns the held ids; the caller must not modify them.
func (ids *IDs) Values() []int32 { return ids.vals }

// Set copies v in after checking its length and that every id is in
// [0, vocab) (or IgnoreIndex, for targets). On error the held ids are
// unchanged.
func (ids *IDs) Set(v []int32) error {
	if ids == nil {
		return errors.New("kernel: ids: Set on a nil *IDs (make it with NewIDs or NewTargets)")
	}
	if len(v) != len(ids.vals) {
		return fmt.Errorf("kernel: ids: got %d ids, want %d", len(v), len(ids.vals))
	}
	for i, id := range v {
		if (id < 0 || int(id) >= ids.vocab) && !(ids.targets && id == IgnoreIndex) {
			if ids.targets {
				return fmt.Errorf("kernel: ids: target %d at position %d is outside the vocabulary [0, %d) and is not the ignore index %d", id, i, ids.vocab, IgnoreIndex)
			}
			return fmt.Errorf("kernel: ids: id %d at position %d is outside the vocabulary [0, %d)", id, i, ids.vocab)
		}
	}
	copy(ids.vals, v)
	ids.set = true
	return nil
}

// Ready reports an error if the ids were never Set.
func (ids *IDs) Ready() error {
	if !ids.set {
		return errors.New("kernel: ids were never Set")
	}
	return nil
}

// held is the copy of an IDs that a kernel takes at its forward, so that a
// Set between the forward and its backward cannot change the backward.
type held struct {
	ids   *IDs
	idx   []int32
	count int // ids that are not IgnoreIndex
}

func hold(ids *IDs) held { return held{ids: ids, idx: make([]int32, ids.Len())} }

func (h *held) take() {
	copy(h.idx, h.ids.vals)
	h.count = 0
	for _, id := range h.idx {
		if id != IgnoreIndex {
			h.count++
		}
	}
}
