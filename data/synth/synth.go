package synth

import (
	"fmt"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/internal/rng"
)

// Task is a synthetic sequence task: SelectiveCopying or InductionHeads.
type Task interface {
	Name() string
	// SeqLen is the sequence length of a row.
	SeqLen() int
	// VocabSize is the vocabulary size.
	VocabSize() int
	// Answers is the number of answer positions per row.
	Answers() int
	validate() error
	// generate writes one row; in and tgt have length Len.
	generate(r *rng.Rand, in, tgt []int32)
	params() string
}

// Selective-copying tokens.
const (
	Noise  int32 = 0
	Marker int32 = 1
)

// SelectiveCopying is the selective copying task; see the package doc.
type SelectiveCopying struct {
	Vocab, Len, Data int
}

// PaperSelectiveCopying is the paper's setting: vocabulary 16, length 4096,
// 16 data tokens.
var PaperSelectiveCopying = SelectiveCopying{Vocab: 16, Len: 4096, Data: 16}

func (t SelectiveCopying) Name() string { return "selective-copying" }
func (t SelectiveCopying) Answers() int { return t.Data }
func (t SelectiveCopying) params() string {
	return fmt.Sprintf("vocab=%d:len=%d:data=%d", t.Vocab, t.Len, t.Data)
}

func (t SelectiveCopying) SeqLen() int    { return t.Len }
func (t SelectiveCopying) VocabSize() int { return t.Vocab }

func (t SelectiveCopying) validate() error {
	switch {
	case t.Vocab < 3 || t.Vocab > 1<<31-1:
		return fmt.Errorf("synth: selective copying needs vocabulary ≥ 3 (noise, marker, data), got %d", t.Vocab)
	case t.Data < 1:
		return fmt.Errorf("synth: selective copying needs ≥ 1 data token, got %d", t.Data)
	case t.Len < 2*t.Data:
		return fmt.Errorf("synth: selective copying length %d is shorter than 2 × %d data tokens", t.Len, t.Data)
	}
	return nil
}

func (t SelectiveCopying) generate(r *rng.Rand, in, tgt []int32) {
	region := t.Len - t.Data
	need, j := t.Data, 0
	for i := range region {
		// Selection sampling (Knuth's algorithm S): position i is taken with
		// probability need/(region-i), giving a uniform sorted subset.
		in[i], tgt[i] = Noise, -1
		if r.Intn(region-i) < need {
			v := 2 + int32(r.Intn(t.Vocab-2))
			in[i] = v
			tgt[region+j] = v
			need--
			j++
		}
	}
	for i := region; i < t.Len; i++ {
		in[i] = Marker
	}
}

// InductionHeads is the induction-heads task; see the package doc.
type InductionHeads struct {
	Vocab, Len int
}

// PaperInductionHeads is the paper's training setting: vocabulary 16,
// length 256 (tested at up to 2^20 by changing Len).
var PaperInductionHeads = InductionHeads{Vocab: 16, Len: 256}

func (t InductionHeads) Name() string   { return "induction-heads" }
func (t InductionHeads) Answers() int   { return 1 }
func (t InductionHeads) SeqLen() int    { return t.Len }
func (t InductionHeads) VocabSize() int { return t.Vocab }
func (t InductionHeads) params() string { return fmt.Sprintf("vocab=%d:len=%d", t.Vocab, t.Len) }

// Trigger returns the trigger token, Vocab-1.
func (t InductionHeads) Trigger() int32 { return int32(t.Vocab - 1) }

func (t InductionHeads) validate() error {
	switch {
	case t.Vocab < 3 || t.Vocab > 1<<31-1:
		return fmt.Errorf("synth: induction heads needs vocabulary ≥ 3 (trigger and 2 values), got %d", t.Vocab)
	case t.Len < 3:
		return fmt.Errorf("synth: induction heads needs length ≥ 3, got %d", t.Len)
	}
	return nil
}

func (t InductionHeads) generate(r *rng.Rand, in, tgt []int32) {
	for i := range in {
		in[i], tgt[i] = int32(r.Intn(t.Vocab-1)), -1
	}
	p := r.Intn(t.Len - 2)
	in[p] = t.Trigger()
	in[t.Len-1] = t.Trigger()
	tgt[t.Len-1] = in[p+1]
}

// Options configures a task stream.
type Options struct {
	Batch    int
	Seed     uint64
	Prefetch int // batches generated ahead by a background goroutine (0 = none)
}

var (
	_ Task = SelectiveCopying{}
	_ Task = InductionHeads{}
)

// New returns a Source of task batches.
func New(t Task, o Options) (*data.Stream, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	if o.Batch < 1 || int64(o.Batch)*int64(t.SeqLen()) > 1<<31-1 {
		return nil, fmt.Errorf("synth: batch %d must be positive and batch × length ≤ 2^31-1", o.Batch)
	}
	g := &gen{t: t, o: o, id: fmt.Sprintf("synth:%s:%s:seed=%d:batch=%d", t.Name(), t.params(), o.Seed, o.Batch)}
	return data.NewStream(g, o.Prefetch)
}

type gen struct {
	t  Task
	o  Options
	id string
}

func (g *gen) ID() string   { return g.id }
func (g *gen) Close() error { return nil }

func (g *gen) Fill(step uint64, b *data.Batch) error {
	L := g.t.SeqLen()
	b.Shape(g.o.Batch, L, false)
	for row := range g.o.Batch {
		r := rng.New(g.o.Seed, step, uint64(row))
		g.t.generate(&r, b.Inputs[row*L:(row+1)*L], b.Targets[row*L:(row+1)*L])
	}
	return nil
}

// Accuracy counts the answer positions (targets ≠ -1) where pred equals the
// target.
func Accuracy(pred, targets []int32) (correct, total int, err error) {
	if len(pred) != len(targets) {
		return 0, 0, fmt.Errorf("synth: %d predictions for %d targets", len(pred), len(targets))
	}
	for i, t := range targets {
		if t != -1 {
			total++
			if pred[i] == t {
				correct++
			}
		}
	}
	return correct, total, nil
}

// Argmax writes the index of the largest logit of each row of logits
// (rows × vocab, row-major) into dst[:rows] and returns it; ties go to the
// lowest index.
func Argmax(dst []int32, logits []float32, vocab int) ([]int32, error) {
	if vocab < 1 || len(logits)%vocab != 0 {
		return dst, fmt.Errorf("synth: %d logits are not whole rows of vocabulary %d", len(logits), vocab)
	}
	dst = dst[:0]
	for i := 0; i < len(logits); i += vocab {
		row, best := logits[i:i+vocab], 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		dst = append(dst, int32(best))
	}
	return dst, nil
}
