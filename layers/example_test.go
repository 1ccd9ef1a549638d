package layers_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/mambago/mamba/layers"
)

func tinyConfig() layers.Config {
	c := layers.DefaultConfig() // Selective: true; a zero Config would be the LTI ablation
	c.VocabSize, c.DModel, c.NLayer, c.DState = 50, 32, 2, 8
	return c
}

func ExampleNew() {
	m, err := layers.New(tinyConfig(), 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := m.Config()
	fmt.Println("vocab", c.PaddedVocab(), "d_inner", c.DInner(), "dt_rank", c.Rank(), "params", c.NumParams())
	for _, p := range m.Params()[:4] {
		fmt.Println(p.Name, p.Shape, p.NoDecay)
	}
	// Output:
	// vocab 56 d_inner 64 dt_rank 2 params 18656
	// backbone.embeddings.weight [56 32] false
	// backbone.layers.0.norm.weight [32] true
	// backbone.layers.0.mixer.in_proj.weight [128 32] false
	// backbone.layers.0.mixer.conv1d.weight [64 1 4] false
}

func ExampleModel_Compile() {
	m, _ := layers.New(tinyConfig(), 1)
	tr, err := m.Compile(2, 8) // batch 2, 8 tokens each: built once, reused every step
	if err != nil {
		fmt.Println(err)
		return
	}
	inputs := make([]int32, 16)
	targets := make([]int32, 16)
	for i := range inputs {
		inputs[i] = int32(i % 7)
		targets[i] = int32((i + 1) % 7)
	}
	targets[7], targets[15] = -1, -1 // ignored positions
	loss, err := tr.Step(inputs, targets, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// At initialisation the model is close to uniform over the 56 ids.
	fmt.Println("loss within 0.2 of ln(56):", math.Abs(loss-math.Log(56)) < 0.2)
	fmt.Println("grad of", m.Params()[0].Name, "has", len(m.Params()[0].Grad), "entries")
	// Output:
	// loss within 0.2 of ln(56): true
	// grad of backbone.embeddings.weight has 1792 entries
}

func ExampleModel_Generate() {
	m, _ := layers.New(tinyConfig(), 1)
	prompt := []int32{1, 2, 3, 4} // one row of 4 tokens
	greedy, err := m.Generate(prompt, 1, 5, layers.Sampling{})
	if err != nil {
		fmt.Println(err)
		return
	}
	sampled, _ := m.Generate(prompt, 1, 5, layers.Sampling{Temperature: 0.8, TopK: 20, TopP: 0.95, Seed: 7})
	fmt.Println(len(greedy), len(sampled))
	// Output: 5 5
}

func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "mamba")
	defer os.RemoveAll(dir)
	m, _ := layers.New(tinyConfig(), 1)
	if err := m.Save(filepath.Join(dir, "ckpt")); err != nil { // config.json + model.safetensors
		fmt.Println(err)
		return
	}
	back, err := layers.Load(filepath.Join(dir, "ckpt"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back.Config().VocabSize, back.Config().DModel, len(back.Params()))
	// Output: 56 32 22
}
