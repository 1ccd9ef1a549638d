package layers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mambago/mamba/data/safetensors"
)

// LM is a language model of either architecture: *Model (a Mamba) or *Llama (a Transformer++).
// NewLM and LoadLM are the one place where the architecture is chosen.
type LM interface {
	Config() Config
	Params() []*Param
	// Save and SaveAs write a transformers model directory (MambaForCausalLM or LlamaForCausalLM).
	Save(dir string) error
	SaveAs(dir string, dtype safetensors.DType) error
	// Compile builds the training graph for batches of batch × seqLen tokens.
	Compile(batch, seqLen int) (*Trainer, error)
	// NewGenerator returns the recurrent inference of batch rows of up to capacity tokens.
	NewGenerator(batch, capacity int) (Generator, error)
	// Generate continues (batch, L) prompts by n tokens each.
	Generate(prompt []int32, batch, n int, s Sampling) ([]int32, error)
}

var (
	_ LM = (*Model)(nil)
	_ LM = (*Llama)(nil)
)

// NewLM builds a model of cfg.Arch initialised from seed (New, NewLlama).
func NewLM(cfg Config, seed uint64) (LM, error) {
	if cfg.IsTransformer() {
		m, err := NewLlama(cfg, seed)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	m, err := New(cfg, seed)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// LoadLM reads a transformers model directory of either architecture, by the model_type of its
// config.json: "mamba" (Load) or "llama" (LoadLlama).
func LoadLM(dir string) (LM, error) {
	raw, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	var head struct {
		ModelType any `json:"model_type"`
	}
	if json.Unmarshal(raw, &head) == nil && head.ModelType == "llama" {
		m, err := LoadLlama(dir)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	m, err := Load(dir) // names a model_type that is neither
	if err != nil {
		return nil, err
	}
	return m, nil
}
