package layers

import (
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
func graph64(t *testing.T, m *Model, batch, L int) *graph {
	t.Helper()
	vals := make([][]float64, len(m.params))
	for i, p := range m.params {
		vals[i] = testutil.Convert[float64](p.Value)
	}
	gr, err := m.build(tensorFloat64, batch, L, true, vals)
	if err != nil {
		t.Fatal(err)
	}
	return gr
}

// TestPackedDocuments: a packed batch (with data.reset_at_doc_boundary's
// resets and masked targets) gives the loss and the parameter gradients of
// its documents run one by one — mean over all counted targets, so each
// document weighs its count — in the float64 graph (to 1e-10) and the
// float32 one, and the float64 reference gives the packed logits of the
// documents alone.
func TestPackedDocuments(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			m := variantModel(t, v.edit)
			p := newPackedBatch(m.cfg.VocabSize)
			V := m.cfg.PaddedVocab()
			n := float64(counted(p.targets))

			// The float64 reference: packed logits are the documents' logits.
			ref := newRef64(m)
			packed := ref.forwardDocs(p.ids, p.resets, p.batch, p.L)
			for _, d := range p.docs {
				alone := ref.forward(p.ids[d[0]:d[1]], 1, d[1]-d[0])
				testutil.Close(t, "reference: packed logits vs the document's", packed[d[0]*V:d[1]*V], alone, 1e-12)
			}

			// The float64 graph.
			gr := graph64(t, m, p.batch, p.L)
			if err := gr.set(p.ids, p.targets, p.resets); err != nil {
				t.Fatal(err)
			}
			loss, err := gr.run()
			if err != nil {
				t.Fatal(err)
			}
			testutil.Close(t, "float64 graph: packed logits vs the reference", gr.vm.Float64s(gr.logits), packed, 1e-10)
			wantLoss, wantGrads := 0.0, make([][]float64, len(m.params))
			for i, q := range m.params {
				wantGrads[i] = make([]float64, len(q.Value))
			}
			for _, d := range p.docs {
				tg := p.targets[d[0]:d[1]]
				k := float64(counted(tg))
				if k == 0 {
					continue
				}
				g := graph64(t, m, 1, d[1]-d[0])
				if err := g.set(p.ids[d[0]:d[1]], tg, nil); err != nil {
					t.Fatal(err)
				}
				l, err := g.run()
				if err != nil {
					t.Fatal(err)
				}
				wantLoss += k / n * l
				for i := range m.params {
					for j, x := range g.vm.Float64s(g.grads[i]) {
						wantGrads[i][j] += k / n * x
					}
				}
			}
			testutil.CheckErr(t, "float64 graph: packed loss vs the documents'", math.Abs(loss-wantLoss), 1e-12)
			for i, q := range m.params {
				testutil.Close(t, "float64 graph: packed gradient of "+q.Name, gr.vm.Float64s(gr.grads[i]), wantGrads[i], 1e-10)
			}
			if rl := crossEntropy64(packed, p.targets, V); !testutil.Within(math.Abs(loss-rl), 1e-10) {
				t.Errorf("float64 graph: packed loss %.12g, reference %.12g", loss, rl)
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
			for i, q := range m.params {
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
		})
	}
}
