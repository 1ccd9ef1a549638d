package layers

import (
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/scan"
)

// Trainer is the compiled training graph of a Model for one (batch, seqLen)
// shape. The graph is built and compiled once; Step and Eval only set the
// token ids and run the tape. Parameter nodes alias Param.Value, so updates
// made in place between steps are what the next step computes with.
//
// A Trainer is not safe for concurrent use.
type Trainer struct {
	m             net
	batch, seqLen int
	train, eval   *graph // eval is built on the first Eval
	last          *graph // the graph of the last successful run
}

// graph is one built expression graph with the machine that runs it.
type graph struct {
	g            *gorgonia.ExprGraph
	ids, targets *autograd.Ids
	resets       *autograd.Resets
	params       gorgonia.Nodes // parallel to Model.params
	grads        gorgonia.Nodes // d loss / d params, when built with gradients
	bound        []bool         // the machine writes grads[i] straight into Param.Grad
	loss, logits *gorgonia.Node
	blocks       []gorgonia.Nodes // the activation nodes each block adds
	vm           *autograd.Machine
}

// net is a model a training graph is built for: its parameters and the
// function from the token ids to the logits.
type net interface {
	Config() Config
	Params() []*Param
	// logits adds the nodes of the logits (rows, PaddedVocab) of the ids b.ids to b.
	logits(b *builder) *gorgonia.Node
}

// Compile builds the float32 training graph for batches of batch sequences
// of seqLen tokens, and the gradient of the loss with respect to every
// parameter. Inputs, targets and resets of Step and Eval are (batch, seqLen)
// row-major; a target of −1 is ignored. Resets marks packed documents
// (data.Batch.Resets): where resets[r·seqLen+t] ≠ 0 a document starts at
// token t of row r, and neither the conv nor the scan carries anything
// across that boundary, forward or backward; nil is one document per row.
// The target that predicts a document's first token from the one before is
// the caller's to ignore (data's loader sets it to −1).
func (m *Model) Compile(batch, seqLen int) (*Trainer, error) { return compile(m, batch, seqLen) }

func compile(m net, batch, seqLen int) (*Trainer, error) {
	if err := checkBatch(m, batch, seqLen); err != nil {
		return nil, err
	}
	gr, err := build(m, tensor.Float32, batch, seqLen, true, nil)
	if err != nil {
		return nil, err
	}
	return &Trainer{m: m, batch: batch, seqLen: seqLen, train: gr}, nil
}

// Step runs the forward and backward pass on one batch, overwrites every
// Param.Grad with d loss / d Value and returns the loss (the mean
// cross-entropy over targets ≠ −1).
func (t *Trainer) Step(inputs, targets []int32, resets []uint8) (float64, error) {
	loss, err := t.run(t.train, inputs, targets, resets)
	if err != nil {
		return 0, fmt.Errorf("step: %w", err)
	}
	for i, p := range t.m.Params() {
		if !t.train.bound[i] {
			copy(p.Grad, t.train.vm.Float32s(t.train.grads[i]))
		}
	}
	return loss, nil
}

// Eval runs the forward pass only and returns the loss; Param.Grad is left
// as it was.
func (t *Trainer) Eval(inputs, targets []int32, resets []uint8) (float64, error) {
	if t.eval == nil {
		gr, err := build(t.m, tensor.Float32, t.batch, t.seqLen, false, nil)
		if err != nil {
			return 0, err
		}
		t.eval = gr
	}
	loss, err := t.run(t.eval, inputs, targets, resets)
	if err != nil {
		return 0, fmt.Errorf("eval: %w", err)
	}
	return loss, nil
}

// Logits returns the logits of the last Step or Eval, (batch·seqLen,
// PaddedVocab) row-major, valid until the next run; nil before any run.
func (t *Trainer) Logits() []float32 {
	if t.last == nil {
		return nil
	}
	return t.last.vm.Float32s(t.last.logits)
}

// Profile makes later runs of the training graph add the time of each kind
// of op to p (nil: stop).
func (t *Trainer) Profile(p *autograd.Profile) { t.train.vm.SetProfile(p) }

func (t *Trainer) run(gr *graph, inputs, targets []int32, resets []uint8) (float64, error) {
	if err := gr.set(inputs, targets, resets); err != nil {
		return 0, err
	}
	t.last = nil
	loss, err := gr.run()
	if err != nil {
		return 0, err
	}
	t.last = gr
	return loss, nil
}

// set sets the holders of the next run.
func (gr *graph) set(inputs, targets []int32, resets []uint8) error {
	if err := gr.ids.Set(inputs); err != nil {
		return fmt.Errorf("inputs: %w", err)
	}
	if err := gr.targets.Set(targets); err != nil {
		return fmt.Errorf("targets: %w", err)
	}
	if err := gr.resets.Set(resets); err != nil {
		return fmt.Errorf("resets: %w", err)
	}
	return nil
}

// run executes the graph once and returns the loss.
func (gr *graph) run() (float64, error) {
	if err := gr.vm.Run(); err != nil {
		return 0, err
	}
	if l := gr.vm.Float32s(gr.loss); l != nil {
		return float64(l[0]), nil
	}
	return gr.vm.Float64s(gr.loss)[0], nil
}

// build makes the graph of nodes and the machine that runs it; the
// gradients of a float32 graph go straight into Param.Grad.
func build(m net, dtype tensor.Dtype, batch, seqLen int, grads bool, values64 [][]float64) (*graph, error) {
	gr, err := nodes(m, dtype, batch, seqLen, grads, values64)
	if err != nil {
		return nil, err
	}
	outputs := append(gorgonia.Nodes{gr.loss, gr.logits}, gr.grads...)
	if gr.vm, err = autograd.NewMachine(gr.g, outputs...); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	if grads && dtype == tensor.Float32 {
		// Gradients go straight into Param.Grad where the machine can write
		// them there (not where one is another node's value).
		params := m.Params()
		gr.bound = make([]bool, len(params))
		for i, p := range params {
			gr.bound[i] = gr.vm.Bind(gr.grads[i], p.Grad) == nil
		}
	}
	return gr, nil
}

// nodes constructs the graph of m in dtype: the logits of m (see logits) and
// the mean cross-entropy of the targets,
//
//	loss = CrossEntropy(logits, targets)
//
// and, with grads, the gradient of the loss with respect to every parameter.
// Float32 parameter nodes alias Param.Value; a float64 graph (for gradient
// checks) reads values64, parallel to m.Params().
func nodes(m net, dtype tensor.Dtype, batch, seqLen int, grads bool, values64 [][]float64) (gr *graph, err error) {
	b := &builder{cfg: m.Config(), batch: batch, rows: batch * seqLen, dtype: dtype}
	defer func() {
		// Gorgonia panics on some malformed graphs (and on the nil nodes that
		// follow a first error); report the first error instead.
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
		if b.err != nil {
			err = b.err
		}
		if err != nil {
			gr, err = nil, fmt.Errorf("compile: %w", err)
		}
	}()
	gr = &graph{g: gorgonia.NewGraph()}
	b.g = gr.g
	V := b.cfg.PaddedVocab()
	if gr.ids, err = autograd.NewIds(b.rows, V); err != nil {
		return nil, err
	}
	if gr.targets, err = autograd.NewTargets(b.rows, V); err != nil {
		return nil, err
	}
	if gr.resets, err = autograd.NewResets(b.rows); err != nil {
		return nil, err
	}
	b.resets = gr.resets
	b.ids = gr.ids
	b.node = map[*Param]*gorgonia.Node{}
	params := m.Params()
	for i, p := range params {
		shape := p.Shape
		if len(shape) == 3 { // conv1d.weight (E, 1, K) is used as (E, K)
			shape = []int{shape[0], shape[2]}
		}
		var backing any = p.Value
		if dtype == tensor.Float64 {
			backing = values64[i]
		}
		n := gorgonia.NodeFromAny(b.g, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(backing)), gorgonia.WithName(p.Name))
		b.node[p] = n
		gr.params = append(gr.params, n)
	}
	gr.logits = m.logits(b)
	gr.blocks = b.blocks
	gr.loss = b.do(autograd.CrossEntropy(gr.logits, gr.targets))
	if b.err != nil {
		return nil, b.err
	}
	if grads {
		if gr.grads, err = gorgonia.Grad(gr.loss, gr.params...); err != nil {
			return nil, fmt.Errorf("gradient: %w", err)
		}
	}
	return gr, nil
}

// logits is the Mamba:
//
//	h⁰ = E[ids]
//	hˡ = hˡ⁻¹ + Mixerˡ(RMSNorm(hˡ⁻¹))      l = 1..n_layer
//	logits = RMSNorm_f(hⁿ)·Eᵀ
func (m *Model) logits(b *builder) *gorgonia.Node {
	h := b.do(autograd.Embedding(b.ids, b.node[m.emb]))
	for l := range m.blocks {
		h = b.block(func() *gorgonia.Node { return b.mixer(&m.blocks[l], h) })
	}
	hf := b.do(autograd.RMSNorm(h, b.node[m.normF], m.cfg.NormEps))
	return b.do(autograd.Linear(hf, b.node[m.emb], nil, nil, 0, m.cfg.PaddedVocab()))
}

// builder adds nodes to a graph, keeping the first error.
type builder struct {
	cfg    Config
	g      *gorgonia.ExprGraph
	ids    *autograd.Ids
	dtype  tensor.Dtype
	batch  int
	rows   int              // batch·seqLen tokens
	resets *autograd.Resets // the document starts of the packed batch
	node   map[*Param]*gorgonia.Node
	blocks []gorgonia.Nodes // the nodes each residual block added
	err    error
}

// block runs f, which adds one residual block to the graph, records the
// nodes it added and returns its output.
func (b *builder) block(f func() *gorgonia.Node) *gorgonia.Node {
	start := len(b.g.AllNodes())
	h := f()
	b.blocks = append(b.blocks, b.g.AllNodes()[start:])
	return h
}

func (b *builder) do(n *gorgonia.Node, err error) *gorgonia.Node {
	if b.err == nil && err != nil {
		b.err = err
	}
	return n
}

// opt is the node of an optional parameter, or nil.
func (b *builder) opt(p *Param) *gorgonia.Node {
	if p == nil {
		return nil
	}
	return b.node[p]
}

// mixer is one residual block, h + Mixer(RMSNorm(h)):
//
//	[x | z] = n·in_projᵀ (+ b),  n = RMSNorm(h)          two products, one per half
//	u = silu(conv1d(x))
//	[δ | B | C] = u·x_projᵀ,  Δ = softplus(δ·dt_projᵀ + dt_bias)   (LTI: δ = 0, B, C constants)
//	y = SelectiveScan(u, Δ, A = −exp(A_log), B, C, D) ⊙ silu(z)
//	h + y·out_projᵀ (+ b)                               the residual added in the product
func (b *builder) mixer(p *mixer, h *gorgonia.Node) *gorgonia.Node {
	if b.err != nil {
		return nil
	}
	cfg := b.cfg
	E, N, R := cfg.DInner(), cfg.DState, cfg.Rank()
	n := b.do(autograd.RMSNorm(h, b.node[p.norm], cfg.NormEps))
	x := b.do(autograd.Linear(n, b.node[p.inW], b.opt(p.inB), nil, 0, E))
	z := b.do(autograd.Linear(n, b.node[p.inW], b.opt(p.inB), nil, E, 2*E))
	u := b.do(autograd.CausalConv1d(b.batch, x, b.node[p.convW], b.opt(p.convB), true, b.resets))
	var delta, bm, cm *gorgonia.Node
	if p.xW != nil {
		dbc := b.do(autograd.Linear(u, b.node[p.xW], nil, nil, 0, R+2*N)) // one product, split by copies
		dt := b.do(autograd.Columns(dbc, 0, R))
		bm = b.do(autograd.Columns(dbc, R, R+N))
		cm = b.do(autograd.Columns(dbc, R+N, R+2*N))
		delta = b.do(autograd.Linear(dt, b.node[p.dtW], nil, nil, 0, E))
	} else {
		delta = gorgonia.NodeFromAny(b.g, tensor.New(tensor.Of(b.dtype), tensor.WithShape(b.rows, E)), gorgonia.WithName("zero δ"))
		bm = b.do(autograd.Broadcast(b.node[p.bLTI], b.rows))
		cm = b.do(autograd.Broadcast(b.node[p.cLTI], b.rows))
	}
	y := b.do(autograd.SelectiveScan(b.batch, u, delta, b.node[p.aLog], bm, cm, b.node[p.d], z, b.node[p.dtB], scan.Options{Softplus: true}, b.resets))
	return b.do(autograd.Linear(y, b.node[p.outW], b.opt(p.outB), h, 0, cfg.DModel))
}
