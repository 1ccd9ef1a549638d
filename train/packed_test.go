package train

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mambago/mamba/data/shard"
)

// docShard writes a text shard of n documents of 5 to 14 tokens.
func docShard(t *testing.T, path string, n int) string {
	t.Helper()
	w, err := shard.Create(path, shard.Header{Modality: shard.Text, Vocab: 8, Tokenizer: "bytes"})
	if err != nil {
		t.Fatal(err)
	}
	for d := range n {
		doc := make([]int32, 5+d%10)
		for i := range doc {
			doc[i] = int32((d + 3*i) % 8)
		}
		if err := w.WriteDoc(doc, int64(len(doc))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunPassesResets: on shards the trainer hands every training and
// evaluation batch's document starts to the model, with the targets of
// documents' first tokens ignored; data.reset_at_doc_boundary false hands
// none and keeps those targets.
func TestRunPassesResets(t *testing.T) {
	dir := t.TempDir()
	cfg := fakeConfig()
	cfg.Data.Task = TaskShards
	cfg.Data.Train = docShard(t, filepath.Join(dir, "train.tok"), 200)
	cfg.Data.Valid = docShard(t, filepath.Join(dir, "valid.tok"), 40)
	cfg.Run.MaxSteps, cfg.Run.EvalEvery = 4, 2
	for _, reset := range []bool{true, false} {
		t.Run(fmt.Sprintf("reset=%t", reset), func(t *testing.T) {
			cfg.Data.ResetAtDocBoundary = reset
			var steps, evals, starts, masked int
			o := fakeOptions(filepath.Join(t.TempDir(), "run"))
			o.Data = nil // the real shard loader
			o.Backend = fakeBackend{hook: func(m *fakeModel) {
				m.onRun = func(train bool, in, tg []int32, rs []uint8) {
					if train {
						steps++
					} else {
						evals++
					}
					if reset != (rs != nil) || (rs != nil && len(rs) != len(in)) {
						t.Fatalf("train %t: resets %v with reset_at_doc_boundary %t", train, rs, reset)
					}
					for i := range rs {
						if rs[i] != 0 && i%cfg.Data.SeqLen > 0 {
							starts++
							if tg[i-1] != -1 {
								t.Fatalf("train %t: the target of a document's first token at %d is %d, not ignored", train, i, tg[i-1])
							}
						}
					}
					masked += len(tg) - len(slices.DeleteFunc(slices.Clone(tg), func(v int32) bool { return v == -1 }))
				}
			}}
			if _, err := Run(context.Background(), cfg, o); err != nil {
				t.Fatal(err)
			}
			switch {
			case steps == 0 || evals == 0:
				t.Errorf("%d steps and %d evaluation batches ran", steps, evals)
			case reset && starts == 0:
				t.Error("no document start reached the model")
			case !reset && masked != 0:
				t.Errorf("%d targets ignored without resets", masked)
			}
		})
	}
}
