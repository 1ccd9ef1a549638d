package gpu

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/internal/kernel"
)

// EnvGraph, set to 0, keeps executors from capturing their runs into CUDA graphs.
const EnvGraph = "MAMBA_CUDA_GRAPH"

// Executor runs the steps of a planned graph (autograd.Plan) on a device, in the plan's order: each
// forward step's kernel (built from its spec by a cuda.Backend), each fused op's backward once, at
// its first gradient step, with the input gradients the plan needs, and the sums of gradients. Bound
// nodes (parameters, their gradients) live in buffers the caller owns; the other inputs of the
// graph are constants, uploaded once; every other value lives in an arena of device memory
// allocated once, where a buffer is reused as soon as its last reader has run (a Kept node's lives
// until the run ends). Nothing is allocated or copied to the host while it runs, so a run can be
// captured into a CUDA graph and replayed (Capture).
type Executor struct {
	d        *cuda.Device
	acts     []action
	bufs     map[*gorgonia.Node]cuda.Buffer
	staged   []cuda.Staged
	closers  []interface{ Close() error }
	owned    []cuda.Buffer
	arena    int // bytes of the activation arena
	graph    *cuda.Graph
	graphErr error
	prof     *Profile
	events   []*cuda.Event
}

// action is one kernel call of a run: a forward (out), a fused op's backward (dout, din) or a sum.
type action struct {
	name string // the Profile entry
	k    kernel.Kernel[cuda.Buffer]
	bwd  bool
	in   []cuda.Buffer
	out  cuda.Buffer
	dout cuda.Buffer
	din  []cuda.Buffer
}

// step kinds of a plan.
const (
	kindValue    = iota // an input or a constant: bound, or uploaded once
	kindForward         // a fused op
	kindGradient        // an input gradient of a fused op
	kindSum             // the sum gorgonia.Grad inserts where gradients meet
)

// NewExecutor prepares steps for the device of be. bind gives the buffers of nodes that live outside
// the executor: input nodes (parameters) and gradients or gradient sums (written there directly);
// keep lists the nodes whose values are read after a run (the loss, the logits). It fails for a
// step no kernel of be can run, and before allocating when the activations would not fit in the
// device's free memory.
func NewExecutor(be *cuda.Backend, steps []autograd.Step, bind map[*gorgonia.Node]cuda.Buffer, keep ...*gorgonia.Node) (e *Executor, err error) {
	d := be.Device()
	e = &Executor{d: d, bufs: map[*gorgonia.Node]cuda.Buffer{}}
	defer func() {
		if err != nil {
			e.Close()
			e = nil
		}
	}()
	kinds, err := classify(steps, bind)
	if err != nil {
		return nil, err
	}
	// The gradient steps of each forward step, by input.
	grads := map[int][]int{}
	for i, s := range steps {
		if kinds[i] == kindGradient {
			g := grads[s.Of]
			if g == nil {
				g = slices.Repeat([]int{-1}, len(steps[s.Of].Spec.Inputs()))
				grads[s.Of] = g
			}
			g[s.Grad] = i
		}
	}
	// Actions in plan order, and for every step the action that writes it and the last that reads it.
	def := slices.Repeat([]int{-1}, len(steps))
	last := slices.Repeat([]int{-1}, len(steps))
	kernels := map[int]kernel.Kernel[cuda.Buffer]{}
	type plannedAction struct {
		step int
		in   []int
		out  int   // step whose value a forward or sum writes
		dout int   // backward: the upstream gradient's step
		din  []int // backward: the step of each input's gradient, −1 for none
		name string
	}
	var plan []plannedAction
	for i, s := range steps {
		switch kinds[i] {
		case kindForward, kindSum:
			k, err := be.New(s.Spec)
			if err != nil {
				return nil, fmt.Errorf("gpu: step %d (%v): %w", i, s.Node, err)
			}
			e.closers = append(e.closers, k.(interface{ Close() error }))
			if st, ok := k.(cuda.Staged); ok {
				e.staged = append(e.staged, st)
			}
			kernels[i] = k
			name := opName(s.Spec)
			if kinds[i] == kindSum {
				name = "Add (gradient sums)"
			}
			plan = append(plan, plannedAction{step: i, in: s.Inputs, out: i, name: name})
			def[i] = len(plan) - 1
		case kindGradient:
			if def[i] >= 0 {
				continue // written by its op's backward, which has run
			}
			n := len(s.Inputs) - 1
			din := grads[s.Of]
			plan = append(plan, plannedAction{step: s.Of, in: s.Inputs[:n], dout: s.Inputs[n], din: din, out: -1,
				name: opName(s.Spec) + " backward"})
			for _, g := range din {
				if g >= 0 {
					def[g] = len(plan) - 1
				}
			}
		}
	}
	for a, p := range plan {
		reads := append(append([]int{}, p.in...), p.dout)
		if p.out >= 0 {
			reads = p.in
		}
		for _, r := range reads {
			last[r] = max(last[r], a)
		}
	}
	for _, n := range keep {
		i := slices.IndexFunc(steps, func(s autograd.Step) bool { return s.Node == n })
		if i < 0 {
			return nil, fmt.Errorf("gpu: kept node %v is not in the plan", n)
		}
		last[i] = len(plan)
	}
	// Slots: a buffer of the arena is reused by the next value of its size once its last reader ran.
	bytes := func(i int) int { return 4 * max(1, kernel.Size(steps[i].Node.Shape())) }
	offset := map[int]int{}
	free := map[int][]int{} // bytes → offsets
	release := map[int][]int{}
	for a, p := range plan {
		outs := []int{p.out}
		if p.out < 0 {
			outs = p.din
		}
		for _, o := range outs {
			if o < 0 || kinds[o] == kindValue {
				continue
			}
			if _, ok := bind[steps[o].Node]; ok {
				continue
			}
			b := bytes(o)
			if f := free[b]; len(f) > 0 {
				offset[o], free[b] = f[len(f)-1], f[:len(f)-1]
			} else {
				offset[o] = e.arena
				e.arena += (b + 255) / 256 * 256
			}
			release[max(a, last[o])] = append(release[max(a, last[o])], o)
		}
		for _, o := range release[a] {
			free[bytes(o)] = append(free[bytes(o)], offset[o])
		}
	}
	if freeMem, _, _, err := d.MemInfo(); err == nil && int64(e.arena) > freeMem {
		return nil, fmt.Errorf("gpu: the activations need %.2f GB of device memory and %.2f GB are free", float64(e.arena)/1e9, float64(freeMem)/1e9)
	}
	var arena cuda.Buffer
	if e.arena > 0 {
		if arena, err = d.Alloc(e.arena); err != nil {
			return nil, fmt.Errorf("gpu: the activations (%.2f GB): %w", float64(e.arena)/1e9, err)
		}
		e.owned = append(e.owned, arena)
	}
	for i, s := range steps {
		if b, ok := bind[s.Node]; ok {
			if b.Bytes() != bytes(i) {
				return nil, fmt.Errorf("gpu: %v is bound to %d bytes, its shape %v needs %d", s.Node, b.Bytes(), s.Node.Shape(), bytes(i))
			}
			e.bufs[s.Node] = b
			continue
		}
		if kinds[i] == kindValue {
			b, err := e.constant(s.Node)
			if err != nil {
				return nil, err
			}
			e.bufs[s.Node] = b
			continue
		}
		if o, ok := offset[i]; ok {
			e.bufs[s.Node] = arena.Slice(o, o+bytes(i))
		}
	}
	buf := func(i int) cuda.Buffer {
		if i < 0 {
			return cuda.Buffer{}
		}
		return e.bufs[steps[i].Node]
	}
	for _, p := range plan {
		a := action{name: p.name, k: kernels[p.step], in: make([]cuda.Buffer, len(p.in))}
		for j, x := range p.in {
			a.in[j] = buf(x)
		}
		if p.out >= 0 {
			a.out = buf(p.out)
		} else {
			a.bwd, a.dout, a.din = true, buf(p.dout), make([]cuda.Buffer, len(p.din))
			for j, g := range p.din {
				a.din[j] = buf(g)
			}
		}
		e.acts = append(e.acts, a)
	}
	return e, nil
}

// classify returns the kind of every step, or an error for a step the executor cannot run.
func classify(steps []autograd.Step, bind map[*gorgonia.Node]cuda.Buffer) ([]int, error) {
	kinds := make([]int, len(steps))
	for i, s := range steps {
		op := s.Node.Op()
		_, forward := op.(autograd.Forward)
		switch {
		case s.Spec != nil && s.Grad >= 0:
			kinds[i] = kindGradient
		case s.Spec != nil && forward:
			kinds[i] = kindForward
		case s.Spec != nil:
			kinds[i] = kindSum
		case op == nil || op.Arity() == 0:
			kinds[i] = kindValue
		default:
			return nil, fmt.Errorf("gpu: step %d runs gorgonia's %v, which has no device kernel", i, op)
		}
		if _, ok := bind[s.Node]; ok && kinds[i] == kindForward {
			return nil, fmt.Errorf("gpu: %v is bound, but only inputs, gradients and gradient sums can be", s.Node)
		}
	}
	return kinds, nil
}

// constant uploads the float32 value of an input or constant node.
func (e *Executor) constant(n *gorgonia.Node) (cuda.Buffer, error) {
	var data []float32
	switch v := n.Value().(type) {
	case *gorgonia.F32:
		data = []float32{float32(*v)}
	case *tensor.Dense:
		if v.Dtype() != tensor.Float32 {
			return cuda.Buffer{}, fmt.Errorf("gpu: constant %v has dtype %v, want float32", n, v.Dtype())
		}
		data = v.Float32s()
	case nil:
		return cuda.Buffer{}, fmt.Errorf("gpu: input %v has no value and is not bound", n)
	default:
		return cuda.Buffer{}, fmt.Errorf("gpu: constant %v holds a %T, want float32", n, v)
	}
	b, err := e.d.Alloc32(len(data))
	if err != nil {
		return cuda.Buffer{}, err
	}
	e.owned = append(e.owned, b)
	return b, cuda.Upload(e.d, b, data)
}

func opName(s kernel.Spec) string {
	name, _, _ := strings.Cut(s.String(), "{")
	return name
}

// ArenaBytes is the device memory of the executor's activations and gradients.
func (e *Executor) ArenaBytes() int { return e.arena }

// Buffer returns the device buffer of a planned node (valid after a run for a kept or bound node).
func (e *Executor) Buffer(n *gorgonia.Node) cuda.Buffer { return e.bufs[n] }

// Run stages the host inputs (token ids, targets) and runs every action, as the captured graph if
// there is one. It returns a failure of the device or of a kernel; the work may still be running
// (the next download waits for it).
func (e *Executor) Run() error {
	if err := e.d.Err(); err != nil {
		return err
	}
	for _, s := range e.staged {
		if err := s.Stage(); err != nil {
			return err
		}
	}
	switch {
	case e.prof != nil:
		if err := e.profiled(); err != nil {
			return err
		}
	case e.graph != nil:
		if err := e.graph.Launch(); err != nil {
			return err
		}
	default:
		e.launch()
	}
	return e.d.Err()
}

func (e *Executor) launch() {
	for i := range e.acts {
		a := &e.acts[i]
		if a.bwd {
			a.k.Backward(a.in, a.dout, a.din)
		} else {
			a.k.Forward(a.in, a.out)
		}
	}
}

// Capture records the actions into a CUDA graph that later runs replay with one launch (unless
// MAMBA_CUDA_GRAPH=0). Call it after a first run, so that cuBLAS has chosen its algorithms. A capture
// the driver refuses is not an error: runs stay launch by launch, and Captured says why.
func (e *Executor) Capture() error {
	if e.graph != nil || e.graphErr != nil {
		return nil
	}
	if e.graphErr = graphOff(); e.graphErr != nil {
		return nil
	}
	if err := e.d.Sync(); err != nil {
		return err
	}
	if err := e.d.BeginCapture(); err != nil {
		e.graphErr = err
		return nil
	}
	e.launch()
	g, err := e.d.EndCapture()
	if err == nil {
		err = e.d.Err()
	}
	if err != nil {
		if g != nil {
			g.Close()
		}
		e.graphErr = err
		return e.d.Err() // a kernel that failed while captured has made the device unusable
	}
	e.graph = g
	return nil
}

// graphOff says why runs are not captured into graphs (MAMBA_CUDA_GRAPH=0), or nil.
func graphOff() error {
	if os.Getenv(EnvGraph) == "0" {
		return fmt.Errorf("%s=0", EnvGraph)
	}
	return nil
}

// Captured reports whether runs replay a CUDA graph, and if not, why.
func (e *Executor) Captured() (bool, error) { return e.graph != nil, e.graphErr }

// Launches is the number of kernel calls (each a launch or more) of a run.
func (e *Executor) Launches() int { return len(e.acts) }

// Close frees the executor's kernels, constants, arena and graph.
func (e *Executor) Close() error {
	var errs []error
	if e.graph != nil {
		errs = append(errs, e.graph.Close())
	}
	for _, ev := range e.events {
		errs = append(errs, ev.Close())
	}
	for _, c := range e.closers {
		errs = append(errs, c.Close())
	}
	for _, b := range e.owned {
		errs = append(errs, e.d.Free(b))
	}
	e.graph, e.events, e.closers, e.owned = nil, nil, nil, nil
	return errors.Join(errs...)
}

// Profile is the device time of each kind of action over profiled runs, measured with CUDA events
// around every action.
type Profile struct {
	index   map[string]int
	Entries []autograd.ProfileEntry
}

// NewProfile returns an empty profile.
func NewProfile() *Profile { return &Profile{index: map[string]int{}} }

func (p *Profile) add(name string, d time.Duration) {
	i, ok := p.index[name]
	if !ok {
		i = len(p.Entries)
		p.index[name] = i
		p.Entries = append(p.Entries, autograd.ProfileEntry{Name: name})
	}
	p.Entries[i].Time += d
	p.Entries[i].Calls++
}

// SetProfile makes later runs add the time of every action to p (nil: stop). Profiled runs launch
// action by action, with an event between actions, and wait for the device at their end.
func (e *Executor) SetProfile(p *Profile) error {
	e.prof = p
	if p == nil || len(e.events) > 0 {
		return nil
	}
	for range len(e.acts) + 1 {
		ev, err := e.d.NewEvent()
		if err != nil {
			return err
		}
		e.events = append(e.events, ev)
	}
	return nil
}

func (e *Executor) profiled() error {
	if err := e.events[0].Record(); err != nil {
		return err
	}
	for i := range e.acts {
		a := &e.acts[i]
		if a.bwd {
			a.k.Backward(a.in, a.dout, a.din)
		} else {
			a.k.Forward(a.in, a.out)
		}
		if err := e.events[i+1].Record(); err != nil {
			return err
		}
	}
	for i := range e.acts {
		ms, err := e.events[i+1].Since(e.events[i])
		if err != nil {
			return err
		}
		e.prof.add(e.acts[i].name, time.Duration(ms*float64(time.Millisecond)))
	}
	return nil
}
