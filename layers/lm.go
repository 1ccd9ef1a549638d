package layers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/regfile"
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

// isLlama reports whether a config.json names model_type "llama".
func isLlama(raw []byte) bool {
	var head struct {
		ModelType any `json:"model_type"`
	}
	return json.Unmarshal(raw, &head) == nil && head.ModelType == "llama"
}

// ReadConfig reads the config.json of a transformers model directory of either architecture (as
// LoadLM tells them apart) without the weights: what a caller needs to estimate a model's memory
// before loading it.
func ReadConfig(dir string) (Config, error) {
	raw, err := regfile.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return Config{}, fmt.Errorf("load model: %w", err)
	}
	parse := parseHFConfig
	if isLlama(raw) {
		parse = parseLlamaHFConfig
	}
	cfg, err := parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("load model %s: %w", dir, err)
	}
	return cfg, nil
}

// LoadLM reads a transformers model directory of either architecture, by the model_type of its
// config.json: "mamba" (Load) or "llama" (LoadLlama).
func LoadLM(dir string) (LM, error) {
	raw, err := regfile.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if isLlama(raw) {
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

// saveParams writes params as model.safetensors in dtype (F32, BF16, F16 or F64), then config.json
// holding cj, into dir (created if needed), each file atomically.
func saveParams(dir string, params []*Param, cj []byte, dtype safetensors.DType) error {
	if !slices.Contains([]safetensors.DType{safetensors.F32, safetensors.BF16, safetensors.F16, safetensors.F64}, dtype) {
		return fmt.Errorf("save model: unsupported dtype %q (want F32, BF16, F16 or F64)", dtype)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	ts := make([]safetensors.Tensor, len(params))
	for i, p := range params {
		ts[i] = safetensors.Tensor{Name: p.Name, Shape: p.Shape, DType: dtype, F32: p.Value}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, weightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, configFile), cj); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}
