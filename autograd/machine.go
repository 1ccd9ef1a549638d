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
//
// A gradient sum whose later term comes from a backward that can add to its
// output (kernel.Accumulator) costs nothing: that backward adds its gradient
// into the buffer of the earlier term, which becomes the sum's value, when
// nothing else reads that buffer afterwards (Fused counts these sums). The
// residual stream's gradient, the parts of [δ | B | C], the two halves of
// in_proj and the tied embedding are summed this way. The sums are taken in
// plan order, so results stay independent of the number of cores; they differ
// in the last bits from an Add after both terms.
type Machine struct {
	steps   []Step
	run     func() error
	f32     func(n *gorgonia.Node) []float32
	f64     func(n *gorgonia.Node) []float64
	bind    func(n *gorgonia.Node, buf any) error
	prof    func(p *Profile)
	nfallbk int
	nfused  int
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
		m.run, m.f32, m.bind, m.prof, m.nfallbk, m.nfused = mm.runAll, mm.data, mm.bindAny, mm.setProfile, mm.fallbacks(), mm.nsum
	case tensor.Float64:
		mm, err := newMachine[float64](steps)
		if err != nil {
			return nil, err
		}
		m.run, m.f64, m.bind, m.prof, m.nfallbk, m.nfused = mm.runAll, mm.data, mm.bindAny, mm.setProfile, mm.fallbacks(), mm.nsum
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

// Fused is the number of gradient sums computed by a backward adding into
// the other term's buffer, with no step of their own.
func (m *Machine) Fused() int { return m.nfused }

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
	stepSum // a gradient sum fused into the backward of its later term
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
	gr    *gradRun[T] // gradient: the machine's run of its op's backward
	sum   *sumGroup[T]
	add   kernel.Kernel[[]T]
	buf   []T
	val   gorgonia.Value
	prof  int // profile entry; −1: not timed
}

// gradRun is what a machine keeps for one gradient cache: the buffers its
// backward writes (the cache's own, a bound parameter gradient, or a sum it
// adds into), the gradients some output needs, which of them it adds, and
// where in the plan it runs.
type gradRun[T float] struct {
	c    *gradCache[T]
	din  [][]T
	vals []gorgonia.Value
	want []bool // the gradients some output needs
	add  []bool // nil, or the gradients the backward adds to din
	mask [][]T  // din with nil for the gradients not wanted
	at   int    // the plan index of the cache's first step, where the backward runs
}

// masked returns din with nil for the gradients not wanted.
func (r *gradRun[T]) masked() [][]T {
	for i, d := range r.din {
		r.mask[i] = nil
		if r.want[i] {
			r.mask[i] = d
		}
	}
	return r.mask
}

// sumGroup is one buffer that several backwards write in plan order: the
// first overwrites it, the others add to it (a chain of fused gradient sums).
type sumGroup[T float] struct{ members []gradSlot[T] }

// gradSlot is gradient which of a gradRun.
type gradSlot[T float] struct {
	r     *gradRun[T]
	which int
}

func (g *sumGroup[T]) value() ([]T, gorgonia.Value) {
	f := g.members[0]
	return f.r.din[f.which], f.r.vals[f.which]
}

type machine[T float] struct {
	steps []mstep[T]
	index map[*gorgonia.Node]int
	group []*sumGroup[T] // per step: the group its value belongs to, or nil
	prof  *Profile
	nfb   int
	nsum  int
}

func newMachine[T float](plan []Step) (*machine[T], error) {
	m := &machine[T]{steps: make([]mstep[T], len(plan)), index: map[*gorgonia.Node]int{}, group: make([]*sumGroup[T], len(plan))}
	runs := map[*gradCache[T]]*gradRun[T]{}
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
			if _, err := op.kernel(); err != nil {
				return nil, err
			}
			s.kind, s.fwd = stepForward, op
		case *gradOp[T]:
			s.kind, s.grad = stepGrad, op
			r := runs[op.c]
			if r == nil {
				if _, err := op.c.op.kernel(); err != nil {
					return nil, err
				}
				op.c.alloc()
				n := len(op.c.din)
				r = &gradRun[T]{c: op.c, din: append([][]T(nil), op.c.din...), vals: append([]gorgonia.Value(nil), op.c.vals...),
					want: make([]bool, n), mask: make([][]T, n), at: i}
				runs[op.c] = r
			}
			r.want[op.which] = true
			s.gr = r
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
	if dtypeOf[T]() == tensor.Float32 {
		m.fuseSums()
	}
	return m, nil
}

// fuseSums turns every gradient sum it can into its later term's backward
// adding into the earlier term's buffer. The terms are ordered by where their
// values are complete (a gradient where its op's backward runs, a fused sum
// where its last term's does); the later one must be a gradient read by the
// sum alone, from a backward that can add to it and does not read the
// earlier buffer, and nothing else may read the earlier buffer from then on.
// Only float32 graphs fuse: the float64 ones check the kernels against the
// plain sums.
func (m *machine[T]) fuseSums() {
	readers := make([][]int, len(m.steps))
	for j := range m.steps {
		for _, i := range m.steps[j].in {
			readers[i] = append(readers[i], j)
		}
	}
	at := func(j int) int { // where step j reads its inputs and writes its value
		if m.steps[j].kind == stepGrad {
			return m.steps[j].gr.at
		}
		return j
	}
	done := make([]int, len(m.steps)) // where each step's value is complete
	for i := range m.steps {
		done[i] = at(i)
	}
	for i := range m.steps {
		s := &m.steps[i]
		if s.kind != stepAdd {
			continue
		}
		a, b := s.in[0], s.in[1]
		if done[a] > done[b] {
			a, b = b, a
		}
		g, ok := m.groupOf(a), done[a] < done[b]
		sb := &m.steps[b]
		ok = ok && g != nil && sb.kind == stepGrad && len(readers[b]) == 1
		if ok {
			acc, can := sb.gr.c.op.k.(kernel.Accumulator[[]T])
			ok = can && acc.Accumulates(sb.grad.which)
		}
		for _, j := range readers[a] {
			ok = ok && (j == i || at(j) < sb.gr.at)
		}
		for _, j := range sb.in {
			ok = ok && m.group[j] != g
		}
		if !ok {
			continue
		}
		r, w := sb.gr, sb.grad.which
		r.din[w], r.vals[w] = g.value()
		if r.add == nil {
			r.add = make([]bool, len(r.din))
		}
		r.add[w] = true
		g.members = append(g.members, gradSlot[T]{r, w})
		m.group[b], m.group[i] = g, g
		s.kind, s.sum, s.add, s.buf, s.val = stepSum, g, nil, nil, nil
		done[i] = sb.gr.at
		m.nsum++
	}
}

// groupOf returns the group of step i's value: its own, or a new one when it
// is a gradient (its op's buffer); nil for other steps.
func (m *machine[T]) groupOf(i int) *sumGroup[T] {
	if g := m.group[i]; g != nil {
		return g
	}
	s := &m.steps[i]
	if s.kind != stepGrad {
		return nil
	}
	g := &sumGroup[T]{members: []gradSlot[T]{{s.gr, s.grad.which}}}
	m.group[i] = g
	return g
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
	switch {
	case m.group[i] != nil:
		v := valueOver(b, s.shape)
		for _, slot := range m.group[i].members {
			slot.r.din[slot.which], slot.r.vals[slot.which] = b, v
		}
	case s.kind == stepGrad:
		r, w := s.gr, s.grad.which
		r.din[w], r.vals[w] = b, valueOver(b, s.shape)
	case s.kind == stepAdd:
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
				runs = s.gr.c.runs
			}
		}
		if err := m.step(s); err != nil {
			return err
		}
		if s.prof >= 0 {
			e := &m.prof.entries[s.prof]
			e.Time += time.Since(start)
			if s.kind != stepGrad || s.gr.c.runs != runs {
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
		r, n := s.gr, len(s.args)-1
		r.c.run(s.args[:n], s.args[n], r.masked(), r.add)
		s.buf, s.val = r.din[s.grad.which], r.vals[s.grad.which]
	case stepAdd:
		s.add.Forward(s.args, s.buf)
	case stepSum:
		s.buf, s.val = s.sum.value()
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
