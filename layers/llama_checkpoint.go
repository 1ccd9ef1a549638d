package layers

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/internal/regfile"
)

// LoadLlama reads a transformers LlamaForCausalLM directory: config.json (transformers 4 or 5)
// and model.safetensors in F32, F64, BF16 or F16. A tied lm_head.weight, if stored, must equal the
// embedding; an untied one is required. NaN or infinite weights are refused, naming the tensor.
func LoadLlama(dir string) (*Llama, error) {
	raw, err := regfile.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	cfg, err := parseLlamaHFConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	f, err := safetensors.ReadFile(filepath.Join(dir, weightsFile))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m := llamaLayout(cfg)
	if err := m.setWeights(f); err != nil {
		return nil, fmt.Errorf("load model %s: %w", f.Path, err)
	}
	return m, nil
}

// setWeights checks f's names and shapes against the layout, then allocates the parameters and
// copies their values in.
func (m *Llama) setWeights(f *safetensors.File) error {
	const head = "lm_head.weight"
	known := map[string]bool{head: true}
	for _, p := range m.params {
		known[p.Name] = true
		info, ok := f.Info(p.Name)
		if !ok {
			return fmt.Errorf("missing tensor %q", p.Name)
		}
		if !slices.Equal(info.Shape, p.Shape) {
			return fmt.Errorf("tensor %q has shape %v, the config needs %v", p.Name, info.Shape, p.Shape)
		}
	}
	for _, n := range f.Names() {
		if !known[n] {
			return fmt.Errorf("unexpected tensor %q (not a parameter of this config)", n)
		}
	}
	m.allocate()
	for _, p := range m.params {
		v, _, err := f.Float32(p.Name)
		if err != nil {
			return err
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("tensor %q holds %v at element %d", p.Name, x, i)
			}
		}
		copy(p.Value, v)
	}
	if _, ok := f.Info(head); ok && m.head == nil {
		v, shape, err := f.Float32(head)
		if err != nil {
			return err
		}
		if !slices.Equal(shape, m.emb.Shape) || !slices.Equal(v, m.emb.Value) {
			return fmt.Errorf("tensor %q differs from the embedding, but tie_word_embeddings is true", head)
		}
	}
	return nil
}

// Save writes config.json and model.safetensors (F32; a tied head is left out) into dir,
// creating it if needed, each file atomically, weights first.
func (m *Llama) Save(dir string) error { return m.SaveAs(dir, safetensors.F32) }

// SaveAs is Save with a chosen storage type: F32, BF16, F16 or F64.
func (m *Llama) SaveAs(dir string, dtype safetensors.DType) error {
	cj, err := m.cfg.llamaHFConfigJSON()
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return saveParams(dir, m.params, cj, dtype)
}
