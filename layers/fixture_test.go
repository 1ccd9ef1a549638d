package layers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mambago/mamba/data/safetensors"
)

// hfFixture is one transformers case: a MambaForCausalLM (hf_*, made by
// shared/reference/make_fixtures.py) or a LlamaForCausalLM (llama_*).
type hfFixture struct {
	name   string
	dir    string
	ids    []int32 // (batch, L)
	batch  int
	seqLen int
	logits []float64 // (batch, L, V)
	loss   float64
	ref    *safetensors.File // grad.<param> tensors
	prompt []int32
	greedy []int32 // prompt followed by the 16 new tokens
}

// fixtureDirs lists the directories matching pattern (such as "hf_*" or "llama_*") under
// $HF_FIXTURES_DIR (default ../shared/fixtures; a relative path is taken from the repository
// root). Finding none is a failure.
func fixtureDirs(t *testing.T, pattern string) []string {
	t.Helper()
	root := os.Getenv("HF_FIXTURES_DIR")
	if root == "" {
		root = filepath.Join("..", "shared", "fixtures")
	}
	if !filepath.IsAbs(root) {
		root = filepath.Join("..", root) // the tests run in <repo>/layers
	}
	dirs, err := filepath.Glob(filepath.Join(root, pattern))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no %s fixture directories under %s (HF_FIXTURES_DIR=%q)", pattern, root, os.Getenv("HF_FIXTURES_DIR"))
	}
	return dirs
}

func int32s(t *testing.T, f *safetensors.File, name string) ([]int32, []int) {
	t.Helper()
	v, shape, err := f.Int64(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out, shape
}

func loadHFFixture(t *testing.T, dir string) (*Model, *hfFixture) {
	t.Helper()
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, readFixture(t, dir)
}

// readFixture reads the reference.safetensors and generate.safetensors of a
// fixture directory (hf_* or llama_*).
func readFixture(t *testing.T, dir string) *hfFixture {
	t.Helper()
	ref, err := safetensors.ReadFile(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := safetensors.ReadFile(filepath.Join(dir, "generate.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	fx := &hfFixture{name: filepath.Base(dir), dir: dir, ref: ref}
	var shape []int
	fx.ids, shape = int32s(t, ref, "input_ids")
	fx.batch, fx.seqLen = shape[0], shape[1]
	if fx.logits, _, err = ref.Float64("logits"); err != nil {
		t.Fatal(err)
	}
	loss, _, err := ref.Float64("loss")
	if err != nil {
		t.Fatal(err)
	}
	fx.loss = loss[0]
	fx.prompt, _ = int32s(t, gen, "prompt")
	fx.greedy, _ = int32s(t, gen, "greedy")
	return fx
}

// shiftedTargets is transformers' loss convention: position t predicts
// ids[t+1]; the last position of each row is ignored (−1).
func shiftedTargets(ids []int32, batch, L int) []int32 {
	tg := make([]int32, len(ids))
	for b := 0; b < batch; b++ {
		for t := 0; t < L; t++ {
			tg[b*L+t] = -1
			if t+1 < L {
				tg[b*L+t] = ids[b*L+t+1]
			}
		}
	}
	return tg
}
