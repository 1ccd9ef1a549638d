package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/layers"
)

// tinyTransformer is tinyRun for a Transformer++ of the same width.
func tinyTransformer(steps, every int, extra ...string) []string {
	return tinyRun(steps, every, append([]string{"--set", "model.arch=transformer", "--set", "model.n_head=2", "--set", "model.n_kv_head=1"}, extra...)...)
}

// The Transformer++ trains, evaluates, generates and, killed with SIGKILL mid-run and resumed,
// ends bitwise where an uninterrupted run ends, through the same command as the Mamba.
func TestTransformerTrainEvalGenerateResume(t *testing.T) {
	const steps = 40
	ref := filepath.Join(t.TempDir(), "ref")
	r := runBin(t, append(tinyTransformer(steps, 3), "--out", ref)...)
	if r.code != 0 {
		t.Fatalf("reference run: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"arch":"transformer"`) || !strings.Contains(r.stdout, "SUMMARY") {
		t.Errorf("stdout lacks the transformer config or the summary:\n%s", r.stdout)
	}
	var sum struct {
		Arch         string  `json:"arch"`
		NonEmbedding int     `json:"non_embedding_params"`
		FLOPsPerTok  float64 `json:"flops_per_token"`
	}
	if err := json.Unmarshal(fileBytes(t, filepath.Join(ref, "summary.json")), &sum); err != nil || sum.Arch != "transformer" {
		t.Errorf("summary.json: %+v, %v", sum, err)
	}
	ck := lastCheckpoint(t, ref)
	if cj := fileBytes(t, filepath.Join(ck, "config.json")); !bytes.Contains(cj, []byte(`"model_type": "llama"`)) {
		t.Errorf("checkpoint config.json is not a Llama's: %s", cj)
	}
	if e := runBin(t, "eval", "--checkpoint", ref); e.code != 0 || !strings.Contains(e.stdout, "val accuracy") {
		t.Errorf("eval: exit %d, stdout %q, stderr %q", e.code, e.stdout, e.stderr)
	}
	g := runBin(t, "generate", "--checkpoint", ck, "--prompt-ids", "2,3,1", "--tokens", "5", "--temperature", "0.7", "--top-k", "4")
	if g.code != 0 || len(strings.Split(strings.TrimSpace(g.stdout), ",")) != 5 {
		t.Errorf("generate: exit %d, stdout %q, stderr %q", g.code, g.stdout, g.stderr)
	}

	ft := filepath.Join(t.TempDir(), "ft")
	if r := runBin(t, append(tinyRun(2, 0, "--init-from", ref, "--set", `run.freeze=["model.layers.0.*"]`), "--out", ft)...); r.code != 0 || !strings.Contains(r.stdout, `"arch":"transformer"`) {
		t.Errorf("init-from the run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	out := filepath.Join(t.TempDir(), "killed")
	kills := killUntilDone(t, tinyTransformer(steps, 3), out, rand.New(rand.NewPCG(3, 3)))
	if kills < 1 {
		t.Fatal("no kill landed before the run finished")
	}
	if want, got := readLosses(t, ref), readLosses(t, out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("metrics differ after %d kills and resumes:\n got %q\nwant %q", kills, got, want)
	}
	if a, b := fileBytes(t, filepath.Join(ck, "model.safetensors")), fileBytes(t, filepath.Join(lastCheckpoint(t, out), "model.safetensors")); !bytes.Equal(a, b) {
		t.Error("final weights differ after kill+resume")
	}
}

// Fine-tuning starts from a transformers LlamaForCausalLM directory (the shared fixture), with a
// frozen embedding: the run takes the fixture's model config, and the embedding ends as it began.
func TestInitFromLlamaDirectory(t *testing.T) {
	dir := os.Getenv("HF_FIXTURES_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "fixtures")
	}
	hf := filepath.Join(dir, "llama_shared_tiny")
	if _, err := os.Stat(filepath.Join(hf, "config.json")); err != nil {
		t.Fatalf("no transformers Llama fixture at %s: %v", hf, err)
	}
	out := filepath.Join(t.TempDir(), "ft")
	r := runBin(t, append(tinyRun(4, 0, "--init-from", hf, "--set", `run.freeze=["model.embed_tokens.*"]`), "--out", out)...)
	if r.code != 0 {
		t.Fatalf("init-from %s: exit %d: %s", hf, r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "the model section is the loaded model's") || !strings.Contains(r.stdout, `"arch":"transformer"`) || !strings.Contains(r.stdout, `"d_model":32`) {
		t.Errorf("the run did not take the fixture's model config:\n%s", r.stdout)
	}
	ck := lastCheckpoint(t, out)
	if cj := fileBytes(t, filepath.Join(ck, "config.json")); !bytes.Contains(cj, []byte(`"hidden_size": 32`)) || !bytes.Contains(cj, []byte(`"model_type": "llama"`)) {
		t.Errorf("fine-tuned checkpoint config.json = %s", cj)
	}
	read := func(dir, name string) []float32 {
		f, err := safetensors.ReadFile(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		v, _, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if !slices.Equal(read(hf, "model.embed_tokens.weight"), read(ck, "model.embed_tokens.weight")) {
		t.Error("the frozen embedding changed")
	}
	if slices.Equal(read(hf, "model.norm.weight"), read(ck, "model.norm.weight")) {
		t.Error("the final norm did not train")
	}
}

// TestBenchTransformer: train bench on a tiny Transformer++ reports its arch, parameters and the
// attention among the ops.
func TestBenchTransformer(t *testing.T) {
	r := runBin(t, append(benchTiny, "--arch", "transformer", "--n-head", "2", "--d-ff", "40", "--json")...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got struct {
		Arch    string  `json:"arch"`
		Params  int     `json:"params"`
		FLOPs   float64 `json:"flops_per_token"`
		DecodeB float64 `json:"decode_tokens_per_s_b16"`
		Ops     []struct {
			Name string `json:"name"`
		} `json:"ops"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	c := layers.DefaultConfig()
	c.Arch, c.DModel, c.NLayer, c.VocabSize, c.NHead, c.DFF = layers.ArchTransformer, 16, 1, 16, 2, 40
	if got.Arch != "transformer" || got.Params != c.NumParams() || got.FLOPs != c.FLOPsPerToken(16) || !(got.DecodeB > 0) {
		t.Errorf("bench: %+v, want %d params, %v FLOPs per token", got, c.NumParams(), c.FLOPsPerToken(16))
	}
	if !slices.ContainsFunc(got.Ops, func(o struct {
		Name string `json:"name"`
	}) bool {
		return o.Name == "Attention backward"
	}) {
		t.Errorf("no attention among the ops: %+v", got.Ops)
	}
}
