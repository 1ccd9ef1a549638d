package corpus

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mambago/mamba/data/shard"
)

func ExamplePrepare() {
	dir, _ := os.MkdirTemp("", "corpus")
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	os.WriteFile(filepath.Join(in, "a.txt"), []byte("The first document.\n"), 0o644)
	os.WriteFile(filepath.Join(in, "b.txt"), []byte("The second one.\n"), 0o644)
	os.WriteFile(filepath.Join(in, "c.jsonl"), []byte(`{"text": "held out"}`+"\n"), 0o644)

	stats, err := Prepare(Options{
		Modality: shard.Text,
		Out:      filepath.Join(dir, "out"),
		Inputs: Inputs{
			Train: []string{filepath.Join(in, "a.txt"), filepath.Join(in, "b.txt")},
			Valid: []string{filepath.Join(in, "c.jsonl")},
			Test:  []string{filepath.Join(in, "c.jsonl")},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range stats {
		fmt.Println(s.File, s.Docs, s.Tokens, s.Units, s.Unit)
	}
	// Output:
	// train.tok 2 36 36 byte
	// valid.tok 1 8 8 byte
	// test.tok 1 8 8 byte
}
