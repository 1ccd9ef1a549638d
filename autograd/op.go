package autograd

import (
	"fmt"
	"hash"
	"hash/fnv"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mambago/mamba/internal/kernel"
)

// float is the element type of a graph: float32 graphs run the CPU kernels,
// float64 graphs the reference kernels.
type float interface{ float32 | float64 }

// Forward is the op of every forward node this package builds: the kernel
// spec it computes. An executor for another device walks a compiled graph and
// builds its own kernels from the specs.
type Forward interface {
	gorgonia.Op
	Spec() kernel.Spec
}

// Gradient is the op of every gradient node: the gradient of input Which()
// of the forward op Of(), all of whose input gradients come from one
// backward run of its kernel (which must be the kernel that ran its forward).
type Gradient interface {
	gorgonia.Op
	Spec() kernel.Spec
	Which() int
	Of() Forward
}

// ready is implemented by specs that read state set outside the graph (token
// ids), to report state that was never set.
type ready interface{ Ready() error }

// opIDs numbers forward op instances. The id goes into every hash so that two
// layers applied to identical inputs are never merged by the graph.
var opIDs atomic.Uint64

// arg is a named input node of an op; an optional one may be nil.
type arg struct {
	name     string
	n        *gorgonia.Node
	optional bool
}

// present checks that every required arg is there and that all present ones
// share one float dtype; it returns the present nodes and their names.
func present(op string, args ...arg) (nodes []*gorgonia.Node, names []string, dt tensor.Dtype, err error) {
	for _, a := range args {
		switch {
		case a.n == nil && a.optional:
			continue
		case a.n == nil:
			return nil, nil, dt, fmt.Errorf("autograd: %s: %s is nil", op, a.name)
		case len(nodes) == 0:
			dt = a.n.Dtype()
			if dt != tensor.Float32 && dt != tensor.Float64 {
				return nil, nil, dt, fmt.Errorf("autograd: %s: %s has dtype %v, want float32 or float64", op, a.name, dt)
			}
		case a.n.Dtype() != dt:
			return nil, nil, dt, fmt.Errorf("autograd: %s: %s has dtype %v, want %v like %s", op, a.name, a.n.Dtype(), dt, names[0])
		}
		nodes, names = append(nodes, a.n), append(names, a.name)
	}
	return nodes, names, dt, nil
}

// checkShape checks that node n (called name) has the wanted shape; a
// negative size in want matches any size.
func checkShape(op, name string, n *gorgonia.Node, want ...int) error {
	s := n.Shape()
	ok := len(s) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = want[i] < 0 || s[i] == want[i]
	}
	if !ok {
		return fmt.Errorf("autograd: %s: %s has shape %v, want %s", op, name, s, shapeString(want))
	}
	return nil
}

func shapeString(want []int) string {
	s := "("
	for i, w := range want {
		if i > 0 {
			s += ", "
		}
		if w < 0 {
			s += "any"
		} else {
			s += fmt.Sprint(w)
		}
	}
	return s + ")"
}

// Apply applies the op of any spec to its input nodes, in the order of
// s.Inputs(): the kernel of the graph's dtype (float32: kernel.CPU, float64:
// kernel.Reference) as a fused op with its gradients. It is how an op
// defined outside this package (a spec implementing kernel.CPUSpec and
// kernel.RefSpec) goes into a graph.
func Apply(s kernel.Spec, inputs ...*gorgonia.Node) (*gorgonia.Node, error) {
	op, _, _ := strings.Cut(s.String(), "{")
	args := make([]arg, len(inputs))
	for i, n := range inputs {
		args[i] = arg{fmt.Sprintf("input %d", i), n, false}
	}
	return apply(op, s, args...)
}

// apply checks the present args against s (their shapes, in order, against
// s.Inputs()), builds the kernel of the graph's dtype and applies the op.
func apply(op string, s kernel.Spec, args ...arg) (*gorgonia.Node, error) {
	nodes, names, dt, err := present(op, args...)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("autograd: %w", err)
	}
	shapes := s.Inputs()
	if len(shapes) != len(nodes) {
		return nil, fmt.Errorf("autograd: %s: %d inputs for %s, which takes %d", op, len(nodes), s, len(shapes))
	}
	for i, n := range nodes {
		if err := checkShape(op, names[i], n, shapes[i]...); err != nil {
			return nil, err
		}
	}
	var o gorgonia.Op
	switch dt {
	case tensor.Float32:
		if _, ok := s.(kernel.CPUSpec); !ok {
			return nil, fmt.Errorf("autograd: kernel: the cpu backend has no kernel for %s", s)
		}
		o = newFused[float32](s, nodes)
	default:
		if _, ok := s.(kernel.RefSpec); !ok {
			return nil, fmt.Errorf("autograd: kernel: the reference backend has no kernel for %s", s)
		}
		o = newFused[float64](s, nodes)
	}
	n, err := gorgonia.ApplyOp(o, nodes...)
	if err != nil {
		return nil, fmt.Errorf("autograd: %s: %w", op, err)
	}
	return n, nil
}

// fusedOp is the forward node of an op: a kernel over its spec. Its output
// storage belongs to the op and is reused every step; nothing the backward
// needs is kept in it. The kernel is built when a Machine is made or the op
// first runs, and the output storage at the first run, so a graph that only
// an executor for another device runs (Plan) takes no host memory for them.
type fusedOp[T float] struct {
	spec  kernel.Spec
	name  string // spec.String(), computed once
	id    uint64
	k     kernel.Kernel[[]T] // nil until built
	in    []tensor.Shape
	outS  tensor.Shape // scalar when empty
	out   []T          // nil until the first run
	outV  gorgonia.Value
	args  [][]T
	steps uint64 // forward runs; a gradient cache recomputes when this moves
	grads int    // SymDiff calls, numbering the gradient caches
}

func newFused[T float](s kernel.Spec, nodes []*gorgonia.Node) *fusedOp[T] {
	op := &fusedOp[T]{spec: s, name: s.String(), id: opIDs.Add(1), args: make([][]T, len(nodes)), outS: tensor.Shape(s.Output())}
	for _, sh := range s.Inputs() {
		op.in = append(op.in, tensor.Shape(sh))
	}
	return op
}

// kernel returns the op's kernel, building it on first use.
func (op *fusedOp[T]) kernel() (kernel.Kernel[[]T], error) {
	if op.k == nil {
		k, err := newKernel[T](op.spec)
		if err != nil {
			return nil, err
		}
		op.k = k
	}
	return op.k, nil
}

func (op *fusedOp[T]) Spec() kernel.Spec { return op.spec }

// newValue allocates storage of the given shape and the gorgonia Value over it
// (a gorgonia scalar for shape (), a dense tensor otherwise).
func newValue[T float](s tensor.Shape) ([]T, gorgonia.Value) {
	buf := make([]T, max(1, s.TotalSize()))
	return buf, valueOver(buf, s)
}

// valueOver is the gorgonia Value over buf with shape s.
func valueOver[T float](buf []T, s tensor.Shape) gorgonia.Value {
	if len(s) == 0 {
		switch p := any(&buf[0]).(type) {
		case *float32:
			return (*gorgonia.F32)(p)
		case *float64:
			return (*gorgonia.F64)(p)
		}
	}
	return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(buf))
}

func (op *fusedOp[T]) Arity() int    { return len(op.in) }
func (op *fusedOp[T]) Type() hm.Type { return fnType(op.in, op.outS) }
func (op *fusedOp[T]) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.outS.Clone(), nil
}

// forward runs the kernel on args, checking state set outside the graph first.
func (op *fusedOp[T]) forward(args [][]T) error {
	if r, ok := op.spec.(ready); ok {
		if err := r.Ready(); err != nil {
			return fmt.Errorf("autograd: %s: %w", op.name, err)
		}
	}
	k, err := op.kernel()
	if err != nil {
		return err
	}
	if op.out == nil {
		op.out, op.outV = newValue[T](op.outS)
	}
	k.Forward(args, op.out)
	op.steps++
	return nil
}

func (op *fusedOp[T]) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := op.load(vals, op.args); err != nil {
		return nil, err
	}
	if err := op.forward(op.args); err != nil {
		return nil, err
	}
	return op.outV, nil
}

// load checks the input values against the op's shapes and dtype and points
// dst at their data.
func (op *fusedOp[T]) load(vals []gorgonia.Value, dst [][]T) error {
	if len(vals) < len(op.in) {
		return fmt.Errorf("autograd: %s: got %d inputs, want %d", op.name, len(vals), len(op.in))
	}
	for i, s := range op.in {
		d, err := valueData[T](vals[i], s)
		if err != nil {
			return fmt.Errorf("autograd: %s: input %d: %w", op.name, i, err)
		}
		dst[i] = d
	}
	return nil
}

// valueData returns the data of v, which must have shape s and element type
// T, without allocating. Scalars (shape ()) may come as gorgonia scalars or
// as one-element tensors.
func valueData[T float](v gorgonia.Value, s tensor.Shape) ([]T, error) {
	switch x := v.(type) {
	case *gorgonia.F32:
		if p, ok := any((*float32)(x)).(*T); ok && len(s) == 0 {
			return unsafe.Slice(p, 1), nil
		}
	case *gorgonia.F64:
		if p, ok := any((*float64)(x)).(*T); ok && len(s) == 0 {
			return unsafe.Slice(p, 1), nil
		}
	case *tensor.Dense:
		if x.Dtype() != dtypeOf[T]() {
			return nil, fmt.Errorf("dtype %v, want %v", x.Dtype(), dtypeOf[T]())
		}
		if x.RequiresIterator() {
			x = x.Materialize().(*tensor.Dense)
		}
		var d []T
		switch p := any(&d).(type) {
		case *[]float32:
			*p = x.Float32s()
		case *[]float64:
			*p = x.Float64s()
		}
		if len(s) == 0 && len(d) == 1 || x.Shape().Eq(s) && len(d) == s.TotalSize() {
			return d, nil
		}
		return nil, fmt.Errorf("shape %v, want %v", x.Shape(), s)
	}
	return nil, fmt.Errorf("value %T of shape %v, want %v tensor of shape %v", v, v.Shape(), dtypeOf[T](), s)
}

func dtypeOf[T float]() tensor.Dtype {
	var x T
	if _, ok := any(x).(float32); ok {
		return tensor.Float32
	}
	return tensor.Float64
}

func (op *fusedOp[T]) ReturnsPtr() bool     { return false }
func (op *fusedOp[T]) CallsExtern() bool    { return false }
func (op *fusedOp[T]) OverwritesInput() int { return -1 }
func (op *fusedOp[T]) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d", op.name, op.id)
}
func (op *fusedOp[T]) Hashcode() uint32 { return hashcode(op) }
func (op *fusedOp[T]) String() string   { return fmt.Sprintf("%s#%d", op.name, op.id) }

func (op *fusedOp[T]) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff returns one gradient node per input. The nodes share one gradCache,
// so the first of them to run in a step runs the backward kernel once and the
// others return its results. An input whose gradient is the output's
// (kernel.PassThrough) gets the upstream gradient node itself.
func (op *fusedOp[T]) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != len(op.in) {
		return nil, fmt.Errorf("autograd: %s: SymDiff got %d inputs, want %d", op.name, len(inputs), len(op.in))
	}
	op.grads++
	c := &gradCache[T]{op: op, gen: op.grads, din: make([][]T, len(inputs)), vals: make([]gorgonia.Value, len(inputs)),
		args: make([][]T, len(inputs)), pass: make([]bool, len(inputs))}
	nodes := append(append(gorgonia.Nodes{}, inputs...), grad)
	ret := make(gorgonia.Nodes, len(inputs))
	pass, _ := op.spec.(kernel.PassThrough)
	for i := range inputs {
		if pass != nil && pass.PassThrough(i) {
			ret[i], c.pass[i] = grad, true // its din entry stays nil: the kernel skips it
			continue
		}
		n, err := gorgonia.ApplyOp(&gradOp[T]{c: c, which: i}, nodes...)
		if err != nil {
			return nil, fmt.Errorf("autograd: %s: gradient %d: %w", op.name, i, err)
		}
		ret[i] = n
	}
	return ret, nil
}

// gradCache holds every input gradient of one fused op, computed by a single
// backward run per forward run. Its gradients' storage is made when a Machine
// is made or the backward first runs (alloc).
type gradCache[T float] struct {
	op   *fusedOp[T]
	gen  int
	step uint64 // op.steps when the backward last ran; 0 = never
	din  [][]T
	vals []gorgonia.Value
	pass []bool // the input's gradient is the upstream one: din stays nil
	args [][]T
	runs int // backward kernel runs, counted for tests
}

// alloc makes the storage of every gradient that is not the upstream one.
func (c *gradCache[T]) alloc() {
	for i := range c.din {
		if c.din[i] == nil && !c.pass[i] {
			c.din[i], c.vals[i] = newValue[T](c.op.in[i])
		}
	}
}

// run runs the kernel's backward into din (nil entries are skipped) unless it
// ran since the last forward. add, when not nil, names the gradients the
// kernel adds to din rather than overwrites (a kernel.Accumulator).
func (c *gradCache[T]) run(args [][]T, dout []T, din [][]T, add []bool) {
	if c.step == c.op.steps && c.runs > 0 {
		return
	}
	if add != nil {
		c.op.k.(kernel.Accumulator[[]T]).BackwardAdd(args, dout, din, add)
	} else {
		c.op.k.Backward(args, dout, din)
	}
	c.step = c.op.steps
	c.runs++
}

// gradOp is the gradient node for input `which` of a fused op:
// (inputs..., d(loss)/d(output)) → d(loss)/d(input which).
type gradOp[T float] struct {
	c     *gradCache[T]
	which int
}

func (g *gradOp[T]) Spec() kernel.Spec { return g.c.op.spec }
func (g *gradOp[T]) Which() int        { return g.which }
func (g *gradOp[T]) Of() Forward       { return g.c.op }

func (g *gradOp[T]) Arity() int { return len(g.c.op.in) + 1 }

func (g *gradOp[T]) Type() hm.Type {
	op := g.c.op
	return fnType(append(append([]tensor.Shape{}, op.in...), op.outS), op.in[g.which])
}

func (g *gradOp[T]) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return g.c.op.in[g.which].Clone(), nil
}

func (g *gradOp[T]) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	c, op := g.c, g.c.op
	if c.step != op.steps || c.runs == 0 {
		if len(vals) != len(op.in)+1 {
			return nil, fmt.Errorf("autograd: %s gradient: got %d inputs, want %d", op.name, len(vals), len(op.in)+1)
		}
		if err := op.load(vals, c.args); err != nil {
			return nil, err
		}
		dout, err := valueData[T](vals[len(vals)-1], op.outS)
		if err != nil {
			return nil, fmt.Errorf("autograd: %s gradient: upstream: %w", op.name, err)
		}
		c.alloc()
		c.run(c.args, dout, c.din, nil)
	}
	return c.vals[g.which], nil
}

func (g *gradOp[T]) ReturnsPtr() bool     { return false }
func (g *gradOp[T]) CallsExtern() bool    { return false }
func (g *gradOp[T]) OverwritesInput() int { return -1 }
func (g *gradOp[T]) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d/grad%d/input%d", g.c.op.name, g.c.op.id, g.c.gen, g.which)
}
func (g *gradOp[T]) Hashcode() uint32 { return hashcode(g) }
func (g *gradOp[T]) String() string {
	return fmt.Sprintf("%s#%d/d%d", g.c.op.name, g.c.op.id, g.which)
}

// fnType is the Hindley–Milner type in₀ → … → out over one element type.
func fnType(in []tensor.Shape, out tensor.Shape) hm.Type {
	a := hm.TypeVariable('a')
	of := func(s tensor.Shape) hm.Type {
		if len(s) == 0 {
			return a
		}
		return gorgonia.TensorType{Dims: len(s), Of: a}
	}
	ts := make([]hm.Type, 0, len(in)+1)
	for _, s := range in {
		ts = append(ts, of(s))
	}
	return hm.NewFnType(append(ts, of(out))...)
}

func hashcode(op gorgonia.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
