package train

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mambago/mamba/layers"
)

// Model is the network a run trains. A layers.LM (a Mamba or a Transformer++)
// satisfies it through Layers; tests use small fakes.
type Model interface {
	Config() layers.Config
	Params() []*layers.Param
	Save(dir string) error // transformers layout: config.json + model.safetensors
	Compile(batch, seqLen int) (Stepper, error)
}

// Stepper runs a compiled (batch, seqLen) graph: Step is forward+backward and
// overwrites every Param.Grad; Eval is forward only. Both return the mean cross-entropy
// over the targets that are not -1. Resets (nil, or data.Batch.Resets) marks the
// packed documents of the batch, across which nothing flows. Logits are those of the last run,
// (batch·seqLen, padded vocabulary) row-major. *layers.Trainer is a Stepper.
type Stepper interface {
	Step(inputs, targets []int32, resets []uint8) (float64, error)
	Eval(inputs, targets []int32, resets []uint8) (float64, error)
	Logits() []float32
}

// Backend makes the models of runs: fresh from a config, or loaded from a
// directory, whose config ReadConfig reads alone (to estimate the memory
// before loading).
type Backend interface {
	NewModel(cfg layers.Config, seed uint64) (Model, error)
	LoadModel(dir string) (Model, error)
	ReadConfig(dir string) (layers.Config, error)
}

// Layers is the Backend of the layers package: a Mamba or a Transformer++, as
// model.arch (or a directory's config.json) says.
type Layers struct{}

// NewModel initialises a model of cfg.Arch from seed (layers.NewLM).
func (Layers) NewModel(cfg layers.Config, seed uint64) (Model, error) {
	m, err := layers.NewLM(cfg, seed)
	if err != nil {
		return nil, err
	}
	return lm{m}, nil
}

// LoadModel reads a transformers MambaForCausalLM or LlamaForCausalLM directory
// (ours or transformers').
func (Layers) LoadModel(dir string) (Model, error) {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return nil, fmt.Errorf("%s is not a model directory (no config.json)", dir)
	}
	m, err := layers.LoadLM(dir)
	if err != nil {
		return nil, err
	}
	return lm{m}, nil
}

// ReadConfig reads the config.json of a transformers model directory of either architecture.
func (Layers) ReadConfig(dir string) (layers.Config, error) { return layers.ReadConfig(dir) }

// Wrap makes a loaded or built layers.LM a Model.
func (Layers) Wrap(m layers.LM) Model { return lm{m} }

type lm struct{ layers.LM }

func (m lm) Compile(batch, seqLen int) (Stepper, error) {
	t, err := m.LM.Compile(batch, seqLen)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// argmax returns the lowest index of the largest value.
func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}
