package autograd

import (
	"fmt"
	"strings"
	"time"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mambago/mamba/internal/kernel"
)

// Machine runs a graph of this package's ops in one fixed order, on buffers
// the ops own: once warm, a run allocates nothing. It runs only what the
// requested outputs need; each fused op's backward runs once per run and
// computes only the input gradients some output needs. It takes the place of
// gorgonia's TapeMachine (gorgonia.Grad still builds the backward graph).
//
// Besides this package's ops, a graph may hold input and constant nodes and
// the sums gorgonia.Grad inserts where gradients meet (run as kernel.Add);
// any other gorgonia op runs through its own Do, which allocates (Fallbacks
// counts them).
type Machine struct {
	steps   []Step
	run     func() error
	f32     func(n *gorgonia.Node) []float32
	f64     func(n *gorgonia.Node) []float64
	bind    func(n *gorgonia.Node, buf any) error
	prof    func(p *Profile)
	nfallbk int
}

// Step is one node of a Machine's plan, in execution order: what an executor
// for another device runs.
type Step struct {
	Node   *gorgonia.Node
	Inputs []int       // the steps whose outputs this step reads, in the op's argument order
	Spec   kernel.Spec // nil for input and constant nodes and for other gorgonia ops
	Grad   int         // −1 for a forward, else the input whose gradient this step returns
	Of     int         // for a gradient, the step of its forward op; −1 otherwise
}

// NewMachine plans the runs of g that compute outputs. Every node must have
// float32 values, or every node float64 values.
func NewMachine(g *gorgonia.ExprGraph, outputs ...*gorgonia.Node) (*Machine, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("autograd: machine: no outputs")
	}
	steps, err := plan(g, outputs)
	if err != nil {
		return nil, err
	}
	m := &Machine{steps: steps}
	switch outputs[0].Dtype() {
	case tensor.Float32:
		mm, err := newMachine[float32](steps)
		if err != nil {
			return nil, err
		}
		m.run, m.f32, m.bind, m.prof, m.nfallbk = mm.runAll, mm.data, mm.bindAny, mm.setProfile, mm.fallbacks()
	case tensor.Float64:
		mm, err := newMachine[float64](steps)
		if err != nil {
			return nil, err
		}
		m.run, m.f64, m.bind, m.prof, m.nfallbk = mm.runAll, mm.data, mm.bindAny, mm.setProfile, mm.fallbacks()
	default:
		return nil, fmt.Errorf("autograd: machine: dtype %v, want float32 or float64", outputs[0].Dtype())
	}
	return m, nil
}

// Run computes the outputs. Inputs are read as they are bound when it runs
// (gorgonia.Let), and token ids as they were Set.
func (m *Machine) Run() error { return m.run() }

// Float32s returns the value of a planned node of a float32 graph (nil for a
// node not in the plan), valid until the next Run.
func (m *Machine) Float32s(n *gorgonia.Node) []float32 {
	if m.f32 == nil {
		return nil
	}
	return m.f32(n)
}

// Float64s is Float32s for a float64 graph.
func (m *Machine) Float64s(n *gorgonia.Node) []float64 {
	if m.f64 == nil {
		return nil
	}
	return m.f64(n)
}

// Bind makes every later run write the value of node n into buf ([]float32
// for a float32 graph, []float64 for a float64 one, of n's size) instead of
// a buffer of the machine's: a parameter's gradient straight into the
// optimizer's storage. n must be the gradient of a fused op's input or a
// gradient sum, and nothing else may write buf.
func (m *Machine) Bind(n *gorgonia.Node, buf any) error { return m.bind(n, buf) }

// Plan lists the steps of a run in order.
func (m *Machine) Plan() []Step { return m.steps }

// Plan lists, in the order a Machine would run them, the steps of g that
// compute outputs, without making a Machine: what an executor for another
// device walks. The graph's ops build their CPU kernels and buffers only when
// a Machine or TapeMachine first runs them, so a graph only planned here
// takes no host memory for its activations.
func Plan(g *gorgonia.ExprGraph, outputs ...*gorgonia.Node) ([]Step, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("autograd: plan: no outputs")
	}
	return plan(g, outputs)
}

// Fallbacks is the number of steps that run another gorgonia op through its
// allocating Do.
func (m *Machine) Fallbacks() int { return m.nfallbk }

// SetProfile makes every later run add the time of each step to p (nil: stop).
func (m *Machine) SetProfile(p *Profile) { m.prof(p) }

// Profile is the time a Machine's runs spent in each kind of op, forward and
// backward apart.
type Profile struct {
	index   map[string]int
	entries []ProfileEntry
}

// ProfileEntry is the time spent in one kind of op.
type ProfileEntry struct {
	Name  string // e.g. "Linear", "Linear backward", "Add (gradient sums)"
	Time  time.Duration
	Calls int // kernel runs (a backward counts once, not once per input)
}

// NewProfile returns an empty profile.
func NewProfile() *Profile { return &Profile{index: map[string]int{}} }

// Entries lists the kinds of op in the order they were first run.
func (p *Profile) Entries() []ProfileEntry { return p.entries }

// Reset zeroes the times and counts.
func (p *Profile) Reset() {
	for i := range p.entries {
		p.entries[i].Time, p.entries[i].Calls = 0, 0
	}
}

func (p *Profile) slot(name string) int {
	i, ok := p.index[name]
	if !ok {
		i = len(p.entries)
		p.index[name] = i
		p.entries = append(p.entries, ProfileEntry{Name: name})
	}
	return i
}

// plan orders the nodes the outputs need: children before parents, a
// gradient after the forward of its op.
func plan(g *gorgonia.ExprGraph, outputs []*gorgonia.Node) ([]Step, error) {
	forward := map[gorgonia.Op]*gorgonia.Node{}
	for _, n := range g.AllNodes() {
		if f, ok := n.Op().(Forward); ok {
			forward[f] = n
		}
	}
	index := map[*gorgonia.Node]int{}
	visiting := map[*gorgonia.Node]bool{}
	var steps []Step
	var visit func(n *gorgonia.Node) (int, error)
	visit = func(n *gorgonia.Node) (int, error) {
		if i, ok := index[n]; ok {
			return i, nil
		}
		if visiting[n] {
			return 0, fmt.Errorf("autograd: machine: the graph has a cycle through %v", n)
		}
		visiting[n] = true
		s := Step{Node: n, Grad: -1, Of: -1}
		if gr, ok := n.Op().(Gradient); ok {
			fn := forward[gr.Of()]
			if fn == nil {
				return 0, fmt.Errorf("autograd: machine: the forward node of %v is not in the graph", n)
			}
			of, err := visit(fn)
			if err != nil {
				return 0, err
			}
			s.Spec, s.Grad, s.Of = gr.Spec(), gr.Which(), of
		}
		for it := g.From(n.ID()); it.Next(); {
			c, err := visit(it.Node().(*gorgonia.Node))
			if err != nil {
				return 0, err
			}
			s.Inputs = append(s.Inputs, c)
		}
		switch op := n.Op().(type) {
		case Forward:
			s.Spec = op.Spec()
		case nil:
		default:
			if s.Spec == nil && isAdd(op, n, s.Inputs, steps) {
				s.Spec = kernel.Add{Shape: n.Shape().Clone()}
			}
		}
		index[n] = len(steps)
		steps = append(steps, s)
		return index[n], nil
	}
	for _, o := range outputs {
		if _, err := visit(o); err != nil {
			return nil, err
		}
	}
	return steps, nil
}

// isAdd reports whether op is gorgonia's elementwise sum of two nodes of the
// node's shape (what gorgonia.Grad inserts where gradients meet).
func isAdd(op gorgonia.Op, n *gorgonia.Node, in []int, steps []Step) bool {
	if op.Arity() != 2 || len(in) != 2 || !strings.HasPrefix(op.String(), "+ ") {
		return false
	}
	for _, i := range in {
		if !steps[i].Node.Shape().Eq(n.Shape()) {
			return false
		}
	}
	return true
}

// Kinds of step of a machine.
const (
	stepInput = iota
	stepForward
	stepGrad
	stepAdd
	stepFallback
)

type mstep[T float] struct {
	kind  int
	node  *gorgonia.Node
	shape tensor.Shape // the node's (Node.Shape allocates a copy)
	in    []int
	args  [][]T
	vals  []gorgonia.Value // fallback arguments
	fwd   *fusedOp[T]
	grad  *gradOp[T]
	want  []bool // gradient: the gradients of its op that are needed
	add   kernel.Kernel[[]T]
	buf   []T
	val   gorgonia.Value
	prof  int // profile entry; −1: not timed
}

type machine[T float] struct {
	steps []mstep[T]
	index map[*gorgonia.Node]int
	prof  *Profile
	nfb   int
}

func newMachine[T float](plan []Step) (*machine[T], error) {
	m := &machine[T]{steps: make([]mstep[T], len(plan)), index: map[*gorgonia.Node]int{}}
	wants := map[*gradCache[T]][]bool{}
	for i, p := range plan {
		s := &m.steps[i]
		s.node, s.shape, s.in, s.prof = p.Node, p.Node.Shape(), p.Inputs, -1
		m.index[p.Node] = i
		if p.Node.Dtype() != dtypeOf[T]() {
			return nil, fmt.Errorf("autograd: machine: node %v has dtype %v, want %v like the outputs", p.Node, p.Node.Dtype(), dtypeOf[T]())
		}
		s.args = make([][]T, len(p.Inputs))
		switch op := p.Node.Op().(type) {
		case nil:
			s.kind = stepInput
		case *fusedOp[T]:
			s.kind, s.fwd = stepForward, op
		case *gradOp[T]:
			s.kind, s.grad = stepGrad, op
			w := wants[op.c]
			if w == nil {
				w = make([]bool, len(op.c.din))
				wants[op.c] = w
			}
			w[op.which] = true
			s.want = w
		default:
			switch {
			case p.Spec != nil:
				k, err := newKernel[T](p.Spec)
				if err != nil {
					return nil, err
				}
				s.kind, s.add = stepAdd, k
				s.buf, s.val = newValue[T](tensor.Shape(p.Spec.Output()))
			case isConstant(op):
				s.kind = stepInput
			default:
				s.kind = stepFallback
				s.vals = make([]gorgonia.Value, len(p.Inputs))
				m.nfb++
			}
		}
	}
	return m, nil
}

// isConstant reports whether op is one of gorgonia's constants, whose node
// carries its value.
func isConstant(op gorgonia.Op) bool {
	return op.Arity() == 0
}

// newKernel builds the kernel of s for element type T.
func newKernel[T float](s kernel.Spec) (kernel.Kernel[[]T], error) {
	var k any
	var err error
	if dtypeOf[T]() == tensor.Float32 {
		k, err = kernel.CPU{}.New(s)
	} else {
		k, err = kernel.Reference{}.New(s)
	}
	if err != nil {
		return nil, fmt.Errorf("autograd: machine: %w", err)
	}
	return k.(kernel.Kernel[[]T]), nil
}

func (m *machine[T]) fallbacks() int { return m.nfb }

func (m *machine[T]) bindAny(n *gorgonia.Node, buf any) error {
	b, ok := buf.([]T)
	if !ok {
		return fmt.Errorf("autograd: machine: Bind %v to a %T, want []%v", n, buf, dtypeOf[T]())
	}
	i, ok := m.index[n]
	if !ok {
		return fmt.Errorf("autograd: machine: Bind %v: the node is not in the plan", n)
	}
	s := &m.steps[i]
	if len(b) != s.shape.TotalSize() {
		return fmt.Errorf("autograd: machine: Bind %v of shape %v to %d elements", n, s.shape, len(b))
	}
	switch s.kind {
	case stepGrad:
		c, w := s.grad.c, s.grad.which
		c.din[w], c.vals[w] = b, valueOver(b, s.shape)
	case stepAdd:
		s.buf, s.val = b, valueOver(b, s.shape)
	default:
		return fmt.Errorf("autograd: machine: Bind %v: only a gradient or a gradient sum can write elsewhere", n)
	}
	return nil
}

func (m *machine[T]) setProfile(p *Profile) {
	m.prof = p
	for i := range m.steps {
		s := &m.steps[i]
		s.prof = -1
		if p == nil {
			continue
		}
		switch s.kind {
		case stepForward:
			s.prof = p.slot(opName(s.fwd.name))
		case stepGrad:
			s.prof = p.slot(opName(s.grad.c.op.name) + " backward")
		case stepAdd:
			s.prof = p.slot("Add (gradient sums)")
		case stepFallback:
			s.prof = p.slot("gorgonia " + s.node.Op().String())
		}
	}
}

func opName(spec string) string {
	name, _, _ := strings.Cut(spec, "{")
	return name
}

func (m *machine[T]) data(n *gorgonia.Node) []T {
	if i, ok := m.index[n]; ok {
		return m.steps[i].buf
	}
	return nil
}

func (m *machine[T]) runAll() error {
	for i := range m.steps {
		s := &m.steps[i]
		var start time.Time
		runs := 0
		if s.prof >= 0 {
			start = time.Now()
			if s.kind == stepGrad {
				runs = s.grad.c.runs
			}
		}
		if err := m.step(s); err != nil {
			return err
		}
		if s.prof >= 0 {
			e := &m.prof.entries[s.prof]
			e.Time += time.Since(start)
			if s.kind != stepGrad || s.grad.c.runs != runs {
				e.Calls++ // a gradient step counts when it ran its op's backward
			}
		}
	}
	return nil
}

func (m *machine[T]) step(s *mstep[T]) error {
	for j, c := range s.in {
		s.args[j] = m.steps[c].buf
	}
	switch s.kind {
	case stepInput:
		v := s.node.Value()
		if v == nil {
			return fmt.Errorf("autograd: machine: input %v has no value", s.node)
		}
		d, err := valueData[T](v, s.shape)
		if err != nil {
			return fmt.Errorf("autograd: machine: input %v: %w", s.node, err)
		}
		s.buf, s.val = d, v
	case stepForward:
		if err := s.fwd.forward(s.args); err != nil {
			return err
		}
		s.buf, s.val = s.fwd.out, s.fwd.outV
	case stepGrad:
		c, n := s.grad.c, len(s.args)-1
		c.backward(s.args[:n], s.args[n], s.want)
		s.buf, s.val = c.din[s.grad.which], c.vals[s.grad.which]
	case stepAdd:
		s.add.Forward(s.args, s.buf)
	case stepFallback:
		for j, c := range s.in {
			s.vals[j] = m.steps[c].val
		}
		v, err := s.node.Op().Do(s.vals...)
		if err != nil {
			return fmt.Errorf("autograd: machine: %v: %w", s.node, err)
		}
		d, err := valueData[T](v, s.shape)
		if err != nil {
			return fmt.Errorf("autograd: machine: %v: %w", s.node, err)
		}
		s.buf, s.val = d, v
	}
	return nil
}
