package layers

import (
	"fmt"
	"math"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// packedBatch is a batch of two rows of 13 tokens holding five documents
// (lengths 5, 8 | 2, 1, 10: one shorter than every conv width, one of a
// single token), as the loader packs them: resets at the documents' first
// tokens, and the target before each such token ignored.
type packedBatch struct {
	batch, L     int
	docs         [][2]int // token ranges [start, end) in the batch, row-major
	ids, targets []int32
	resets       []uint8
}

func newPackedBatch(vocab int) packedBatch {
	p := packedBatch{batch: 2, L: 13, docs: [][2]int{{0, 5}, {5, 13}, {13, 15}, {15, 16}, {16, 26}}}
	p.ids = randomIDs(p.batch*p.L, vocab, 31)
	p.targets = randomIDs(p.batch*p.L, vocab, 32) // a row's last target continues its document
	p.resets = make([]uint8, p.batch*p.L)
	for _, d := range p.docs {
		if d[0]%p.L != 0 {
			p.resets[d[0]] = 1
			p.targets[d[0]-1] = -1
		}
	}
	p.targets[7] = -1 // an ignored target inside a document
	return p
}

// counted is the number of targets of tg that are not ignored.
func counted(tg []int32) int {
	n := 0
	for _, v := range tg {
		if v >= 0 {
			n++
		}
	}
	return n
}

// graph64 builds the float64 training graph of m at (batch, L) with the
// model's values.
func graph64(t *testing.T, m net, batch, L int) *graph {
	t.Helper()
	var vals [][]float64
	for _, p := range m.Params() {
		vals = append(vals, testutil.Convert[float64](p.Value))
	}
	gr, err := build(m, tensorFloat64, batch, L, true, vals)
	if err != nil {
		t.Fatal(err)
	}
	return gr
}

// TestPackedDocuments: a packed batch (with data.reset_at_doc_boundary's
// resets and masked targets) gives the loss and the parameter gradients of
// its documents run one by one — mean over all counted targets, so each
// document weighs its count — in the float64 graph (to 1e-10) and the
// float32 one, and the float64 references agree: the Mamba's packed forward
// (forwardDocs) and, for both architectures, the documents' own forwards.
func TestPackedDocuments(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			m := variantModel(t, v.edit)
			ref := newRef64(m)
			p := newPackedBatch(m.cfg.VocabSize)
			packed := ref.forwardDocs(p.ids, p.resets, p.batch, p.L)
			V := m.cfg.PaddedVocab()
			for _, d := range p.docs {
				alone := ref.forward(p.ids[d[0]:d[1]], 1, d[1]-d[0])
				testutil.Close(t, "reference: packed logits vs the document's", packed[d[0]*V:d[1]*V], alone, 1e-12)
			}
			checkPacked(t, m, p, func(ids []int32, L int) []float64 { return ref.forward(ids, 1, L) }, 1e-10)
		})
	}
	for i := range llamaConfigs {
		t.Run(fmt.Sprint("transformer ", i), func(t *testing.T) {
			m := perturbedLlama(t, i)
			ref := llamaRefFromModel(m, 8)
			// The transformers reference rounds its RMSNorm to float32 as PyTorch does.
			checkPacked(t, m, newPackedBatch(m.cfg.VocabSize), func(ids []int32, L int) []float64 { return ref.forward(t, ids, 1, L) }, 1e-6)
		})
	}
}

// checkPacked compares m's graphs on the packed batch p with its documents
// run alone, and the packed float64 logits with alone(ids, L), the float64
// reference's logits of a document (to refTol).
func checkPacked(t *testing.T, m LM, p packedBatch, alone func(ids []int32, L int) []float64, refTol float64) {
	t.Helper()
	n := float64(counted(p.targets))
	V := m.Config().PaddedVocab()
	gr := graph64(t, m.(net), p.batch, p.L)
	if err := gr.set(p.ids, p.targets, p.resets); err != nil {
		t.Fatal(err)
	}
	loss, err := gr.run()
	if err != nil {
		t.Fatal(err)
	}
	logits := gr.vm.Float64s(gr.logits)
	params := m.Params()
	wantLoss, wantGrads := 0.0, make([][]float64, len(params))
	for i, q := range params {
		wantGrads[i] = make([]float64, len(q.Value))
	}
	for _, d := range p.docs {
		testutil.Close(t, "float64 graph: packed logits vs the reference's of the document", logits[d[0]*V:d[1]*V], alone(p.ids[d[0]:d[1]], d[1]-d[0]), refTol)
		tg := p.targets[d[0]:d[1]]
		k := float64(counted(tg))
		if k == 0 {
			continue
		}
		g := graph64(t, m.(net), 1, d[1]-d[0])
		if err := g.set(p.ids[d[0]:d[1]], tg, nil); err != nil {
			t.Fatal(err)
		}
		l, err := g.run()
		if err != nil {
			t.Fatal(err)
		}
		wantLoss += k / n * l
		for i := range params {
			for j, x := range g.vm.Float64s(g.grads[i]) {
				wantGrads[i][j] += k / n * x
			}
		}
	}
	testutil.CheckErr(t, "float64 graph: packed loss vs the documents'", math.Abs(loss-wantLoss), 1e-12)
	for i, q := range params {
		testutil.Close(t, "float64 graph: packed gradient of "+q.Name, gr.vm.Float64s(gr.grads[i]), wantGrads[i], 1e-10)
	}

	// The float32 graph (Trainer.Step), against the float64 graph's documents.
	tr, err := m.Compile(p.batch, p.L)
	if err != nil {
		t.Fatal(err)
	}
	loss32, err := tr.Step(p.ids, p.targets, p.resets)
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckErr(t, "float32 graph: packed loss vs the documents'", math.Abs(loss32-wantLoss), 1e-5)
	for i, q := range params {
		testutil.Close(t, "float32 graph: packed gradient of "+q.Name, q.Grad, wantGrads[i], 1e-4)
	}
	// Eval takes the resets too; nil resets are one document per row.
	if ev, err := tr.Eval(p.ids, p.targets, p.resets); err != nil || ev != loss32 {
		t.Errorf("Eval with resets: %v (%v), Step %v", ev, err, loss32)
	}
	if ev, err := tr.Eval(p.ids, p.targets, nil); err != nil || ev == loss32 {
		t.Errorf("Eval without resets: %v (%v), the same as with them", ev, err)
	}
	if _, err := tr.Step(p.ids, p.targets, p.resets[1:]); err == nil {
		t.Error("Step with resets of the wrong length: no error")
	}
}
