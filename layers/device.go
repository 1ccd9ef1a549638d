package layers

import (
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mambago/mamba/autograd"
)

// DeviceGraph is the float32 training (or evaluation) graph of a Model for
// one (batch, seqLen) shape, for an executor on another device: the steps in
// the order a Machine runs them, each with its kernel spec (autograd.Plan),
// and the nodes an executor binds. Building it takes no host memory for
// activations: the graph's CPU kernels and buffers are made only when a
// Machine runs them.
type DeviceGraph struct {
	Steps        []autograd.Step
	IDs, Targets *autograd.Ids    // Set before each run, as for Trainer.Step
	Resets       *autograd.Resets // Set before each run (nil: one document per row)
	Params       gorgonia.Nodes   // parallel to Model.Params; their values alias Param.Value
	Grads        gorgonia.Nodes   // d loss / d Params; nil without gradients
	Loss, Logits *gorgonia.Node   // the loss (a scalar) and the logits (batch·seqLen, PaddedVocab)
}

// DeviceGraph builds the graph that Compile builds (with the gradients when
// grads is set, else the evaluation graph) and plans it.
func (m *Model) DeviceGraph(batch, seqLen int, grads bool) (*DeviceGraph, error) {
	if err := checkBatch(m, batch, seqLen); err != nil {
		return nil, err
	}
	gr, err := nodes(m, tensor.Float32, batch, seqLen, grads, nil)
	if err != nil {
		return nil, err
	}
	outputs := append(gorgonia.Nodes{gr.loss, gr.logits}, gr.grads...)
	steps, err := autograd.Plan(gr.g, outputs...)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	return &DeviceGraph{Steps: steps, IDs: gr.ids, Targets: gr.targets, Resets: gr.resets, Params: gr.params, Grads: gr.grads,
		Loss: gr.loss, Logits: gr.logits}, nil
}

// checkBatch refuses a batch shape no graph of m can be built for.
func checkBatch(m net, batch, seqLen int) error {
	if batch < 1 || seqLen < 1 {
		return fmt.Errorf("compile: batch and sequence length must be at least 1, got %d×%d", batch, seqLen)
	}
	if tooLarge(batch, seqLen, m.Config().widest()) {
		return fmt.Errorf("compile: batch %d × length %d is too large (an activation exceeds 2^31 elements)", batch, seqLen)
	}
	return nil
}
