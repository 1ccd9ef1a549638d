package autograd

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"
	"unsafe"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// float is the element type of a graph: float32 graphs run the fast kernels,
// float64 graphs run the plain reference kernels.
type float interface{ float32 | float64 }

// kernel is the math of one fused op for element type T. Shapes are fixed when
// the op is built and checked before every call, so the kernels of this
// package never fail; the error is for wrapped kernels that check for
// themselves (scan's). forward writes out and keeps in its own storage (never
// in out, which the VM may overwrite) whatever backward needs. backward runs
// after forward on the same inputs and overwrites din[i] with
// d(loss)/d(input i) for every input.
type kernel[T float] interface {
	forward(in [][]T, out []T) error
	backward(in [][]T, dout []T, din [][]T) error
}

// preparer is implemented by kernels that read state set outside the graph
// (token ids): prepare runs before forward, captures that state for forward
// and backward, and turns bad state into an error.
type preparer interface{ prepare() error }

// spec describes a fused op's signature: the name (with every parameter that
// changes the math), the dtype of the graph and the fixed shapes.
type spec struct {
	name  string
	dtype tensor.Dtype
	in    []tensor.Shape
	out   tensor.Shape // scalar output when len(out) == 0
}

// opIDs numbers forward op instances. The id goes into every hash so that two
// layers applied to identical inputs are never merged by the graph.
var opIDs atomic.Uint64

// build applies the fused op described by s to nodes, with the fast float32
// kernel or the float64 reference kernel according to the graph's dtype.
func build(s spec, k32 func() kernel[float32], k64 func() kernel[float64], nodes ...*gorgonia.Node) (*gorgonia.Node, error) {
	var op gorgonia.Op
	switch s.dtype {
	case tensor.Float32:
		op = newFused(s, k32())
	case tensor.Float64:
		op = newFused(s, k64())
	default:
		return nil, fmt.Errorf("autograd: %s: dtype %v not supported (want float32 or float64)", s.name, s.dtype)
	}
	n, err := gorgonia.ApplyOp(op, nodes...)
	if err != nil {
		return nil, fmt.Errorf("autograd: %s: %w", s.name, err)
	}
	return n, nil
}

// fusedOp is the forward node of a fused op. Its output storage belongs to the
// op and is reused every step; nothing the backward needs is kept in it.
type fusedOp[T float] struct {
	spec
	id    uint64
	k     kernel[T]
	out   []T
	outV  gorgonia.Value
	in    [][]T
	steps uint64 // forward runs; a gradient cache recomputes when this moves
	grads int    // SymDiff calls, numbering the gradient caches
}

func newFused[T float](s spec, k kernel[T]) *fusedOp[T] {
	op := &fusedOp[T]{spec: s, id: opIDs.Add(1), k: k, in: make([][]T, len(s.in))}
	op.out, op.outV = newValue[T](s.out)
	return op
}

// newValue allocates storage of the given shape and the gorgonia Value over it
// (a gorgonia scalar for shape (), a dense tensor otherwise).
func newValue[T float](s tensor.Shape) ([]T, gorgonia.Value) {
	buf := make([]T, max(1, s.TotalSize()))
	if len(s) == 0 {
		switch p := any(&buf[0]).(type) {
		case *float32:
			return buf, (*gorgonia.F32)(p)
		case *float64:
			return buf, (*gorgonia.F64)(p)
		}
	}
	return buf, tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(buf))
}

func (op *fusedOp[T]) Arity() int { return len(op.in) }

func (op *fusedOp[T]) Type() hm.Type { return fnType(op.spec.in, op.spec.out) }

func (op *fusedOp[T]) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.spec.out.Clone(), nil
}

func (op *fusedOp[T]) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := op.load(vals, op.in); err != nil {
		return nil, err
	}
	if p, ok := op.k.(preparer); ok {
		if err := p.prepare(); err != nil {
			return nil, fmt.Errorf("autograd: %s: %w", op.name, err)
		}
	}
	if err := op.k.forward(op.in, op.out); err != nil {
		return nil, fmt.Errorf("autograd: %s: %w", op.name, err)
	}
	op.steps++
	return op.outV, nil
}

// load checks the input values against the op's shapes and dtype and points
// dst at their data.
func (op *fusedOp[T]) load(vals []gorgonia.Value, dst [][]T) error {
	if len(vals) < len(op.spec.in) {
		return fmt.Errorf("autograd: %s: got %d inputs, want %d", op.name, len(vals), len(op.spec.in))
	}
	for i, s := range op.spec.in {
		d, err := valueData[T](vals[i], s)
		if err != nil {
			return fmt.Errorf("autograd: %s: input %d: %w", op.name, i, err)
		}
		dst[i] = d
	}
	return nil
}

// valueData returns the data of v, which must have shape s and element type T.
// Scalars (shape ()) may come as gorgonia scalars or as one-element tensors.
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
		if x.RequiresIterator() {
			x = x.Materialize().(*tensor.Dense)
		}
		d, ok := x.Data().([]T)
		if !ok {
			if len(s) == 0 && x.Shape().TotalSize() == 1 {
				if one, ok := x.Data().(T); ok {
					return []T{one}, nil
				}
			}
			return nil, fmt.Errorf("dtype %v, want %v", x.Dtype(), dtypeOf[T]())
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
// others return its results.
func (op *fusedOp[T]) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != len(op.spec.in) {
		return nil, fmt.Errorf("autograd: %s: SymDiff got %d inputs, want %d", op.name, len(inputs), len(op.spec.in))
	}
	op.grads++
	c := &gradCache[T]{op: op, gen: op.grads, din: make([][]T, len(inputs)), vals: make([]gorgonia.Value, len(inputs)), in: make([][]T, len(inputs))}
	for i, s := range op.spec.in {
		c.din[i], c.vals[i] = newValue[T](s)
	}
	args := append(append(gorgonia.Nodes{}, inputs...), grad)
	ret := make(gorgonia.Nodes, len(inputs))
	for i := range inputs {
		n, err := gorgonia.ApplyOp(&gradOp[T]{c: c, which: i}, args...)
		if err != nil {
			return nil, fmt.Errorf("autograd: %s: gradient %d: %w", op.name, i, err)
		}
		ret[i] = n
	}
	return ret, nil
}

// gradCache holds every input gradient of one fused op, computed by a single
// backward run per forward run.
type gradCache[T float] struct {
	op   *fusedOp[T]
	gen  int
	step uint64 // op.steps when din was computed; 0 = never
	din  [][]T
	vals []gorgonia.Value
	in   [][]T
	runs int // backward kernel runs, counted for tests
}

// gradOp is the gradient node for input `which` of a fused op:
// (inputs..., d(loss)/d(output)) → d(loss)/d(input which).
type gradOp[T float] struct {
	c     *gradCache[T]
	which int
}

func (g *gradOp[T]) Arity() int { return len(g.c.op.spec.in) + 1 }

func (g *gradOp[T]) Type() hm.Type {
	s := g.c.op.spec
	return fnType(append(append([]tensor.Shape{}, s.in...), s.out), s.in[g.which])
}

func (g *gradOp[T]) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return g.c.op.spec.in[g.which].Clone(), nil
}

func (g *gradOp[T]) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	c, op := g.c, g.c.op
	if c.step != op.steps || c.runs == 0 {
		if len(vals) != len(op.spec.in)+1 {
			return nil, fmt.Errorf("autograd: %s gradient: got %d inputs, want %d", op.name, len(vals), len(op.spec.in)+1)
		}
		if err := op.load(vals, c.in); err != nil {
			return nil, err
		}
		dout, err := valueData[T](vals[len(vals)-1], op.spec.out)
		if err != nil {
			return nil, fmt.Errorf("autograd: %s gradient: upstream: %w", op.name, err)
		}
		if err := op.k.backward(c.in, dout, c.din); err != nil {
			return nil, fmt.Errorf("autograd: %s gradient: %w", op.name, err)
		}
		c.step = op.steps
		c.runs++
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

// grow returns buf resized to n elements, reallocating only when it is too small.
func grow[T float](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	return buf[:n]
}

// arg is a named input node of an op; an optional one may be nil.
type arg struct {
	name     string
	n        *gorgonia.Node
	optional bool
}

// inputs checks that every required arg is present and that all present
// ones share one float dtype; it returns the present nodes, their names and
// the dtype.
func inputs(op string, args ...arg) (nodes []*gorgonia.Node, names []string, dt tensor.Dtype, err error) {
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

// tokenInputs is inputs for an op whose first arg is a token-major
// (batch·L, ch) matrix; it also returns that matrix's sizes.
func tokenInputs(op string, batch int, args ...arg) (nodes []*gorgonia.Node, names []string, dt tensor.Dtype, rows, ch int, err error) {
	if nodes, names, dt, err = inputs(op, args...); err != nil {
		return
	}
	x := args[0]
	if err = checkShape(op, x.name, x.n, -1, -1); err != nil {
		return
	}
	rows, ch = x.n.Shape()[0], x.n.Shape()[1]
	if batch < 1 || rows%batch != 0 {
		err = fmt.Errorf("autograd: %s: batch %d does not divide the %d rows of %s", op, batch, rows, x.name)
	}
	return
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

// sumBlocks sets dst[j] = Σ_b parts[b·len(dst)+j], adding the blocks in order.
func sumBlocks[T float](dst, parts []T) {
	n := len(dst)
	copy(dst, parts[:n])
	for b := n; b < len(parts); b += n {
		for j, v := range parts[b : b+n] {
			dst[j] += v
		}
	}
}
