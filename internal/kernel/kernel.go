package kernel

import (
	"fmt"
	"strings"

	"github.com/mambago/mamba/internal/parallel"
)

// Spec is one op instance: what it computes, its fixed shapes and every
// parameter that changes the math. Specs are plain values that name no
// backend; a backend turns one into a Kernel.
type Spec interface {
	// String names the op and every parameter, e.g. RMSNorm{rows=8,dim=4,eps=1e-05}.
	String() string
	// Inputs lists the shape of every input, in order.
	Inputs() [][]int
	// Output is the shape of the output; empty for a scalar.
	Output() []int
	// Validate reports a spec no kernel can run: a size below its minimum,
	// sizes whose element counts overflow, inconsistent options.
	Validate() error
}

// Kernel computes one Spec on buffers of type B ([]float32 on the CPU).
//
// Forward writes out and keeps, inside the kernel and never in out, what
// Backward needs. Backward runs after Forward on the same inputs and
// overwrites din[i] with d(loss)/d(input i), given dout = d(loss)/d(out); it
// skips nil entries of din. Shapes were checked when the kernel was built, so
// neither can fail. A kernel is reused step after step and is not safe for
// concurrent use.
type Kernel[B any] interface {
	Forward(in []B, out B)
	Backward(in []B, dout B, din []B)
}

// PassThrough is implemented by specs with an input whose gradient is the
// output's gradient itself (a residual input, either input of Add): a graph
// hands the upstream gradient on for it instead of asking Backward for a
// copy (Backward still fills the input's entry of din if given one).
type PassThrough interface{ PassThrough(i int) bool }

// Accumulator is implemented by kernels whose backward can add the gradients of some inputs
// to din instead of overwriting them: an executor then sums the gradients that reach one node
// along several paths in place, with no buffer and no pass of their own (Add).
type Accumulator[B any] interface {
	// Accumulates reports whether BackwardAdd can add the gradient of input i.
	Accumulates(i int) bool
	// BackwardAdd is Backward, except that the gradient of every input i with add[i] is
	// added to din[i]; add may be nil (Backward).
	BackwardAdd(in []B, dout B, din []B, add []bool)
}

// adds reports whether add asks for input i's gradient to be added.
func adds(add []bool, i int) bool { return add != nil && add[i] }

// Backend builds kernels over buffers of type B.
type Backend[B any] interface {
	Name() string
	New(Spec) (Kernel[B], error)
}

// CPU is the fast float32 backend: kernels parallel over blocks fixed by the
// shape (bitwise the same results for any GOMAXPROCS), products through the
// tiled sgemm.
type CPU struct{}

// Reference is the float64 backend: plain loops written from the
// definitions, which the tests check CPU against.
type Reference struct{}

// CPUSpec is a spec with a float32 CPU kernel, RefSpec one with a float64
// reference kernel: every spec of this package is both, and a spec defined
// elsewhere (another op's package) joins the CPU and Reference backends by
// implementing them. The methods are called with a validated spec.
type (
	CPUSpec interface {
		Spec
		CPUKernel() Kernel[[]float32]
	}
	RefSpec interface {
		Spec
		ReferenceKernel() Kernel[[]float64]
	}
)

func (CPU) Name() string { return "cpu" }

// New validates s and returns its float32 kernel.
func (CPU) New(s Spec) (Kernel[[]float32], error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if c, ok := s.(CPUSpec); ok {
		return c.CPUKernel(), nil
	}
	return nil, fmt.Errorf("kernel: the cpu backend has no kernel for %s", s)
}

func (Reference) Name() string { return "reference" }

// New validates s and returns its float64 reference kernel.
func (Reference) New(s Spec) (Kernel[[]float64], error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if r, ok := s.(RefSpec); ok {
		return r.ReferenceKernel(), nil
	}
	return nil, fmt.Errorf("kernel: the reference backend has no kernel for %s", s)
}

// Size is the number of elements of a shape (1 for a scalar).
func Size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// MaxElems bounds the element count of every buffer a spec describes: 2^31,
// so that counts fit the 32-bit integers of BLAS and of device kernels.
const MaxElems = 1 << 31

// validate returns an error naming the op of s unless every size (named by
// the comma-separated names) is in [1, MaxElems] and every input and output
// of s has at most MaxElems elements.
func validate(s Spec, names string, sizes ...int) error {
	op, _, _ := strings.Cut(s.String(), "{")
	for i, name := range strings.Split(names, ",")[:len(sizes)] {
		if sizes[i] < 1 || sizes[i] > MaxElems {
			return fmt.Errorf("kernel: %s: %s = %d, want 1 to %d", op, name, sizes[i], MaxElems)
		}
	}
	for _, shape := range append(s.Inputs(), s.Output()) {
		p := 1
		for _, d := range shape {
			if d < 1 || p > MaxElems/d {
				return fmt.Errorf("kernel: %s: a buffer of shape %v is empty or exceeds %d elements", op, shape, MaxElems)
			}
			p *= d
		}
	}
	return nil
}

// items is a kernel's loop body, a method value made once (parallel.BodyFunc).
type items = parallel.BodyFunc

// blocks returns the number of blocks of bs elements that cover n.
func blocks(n, bs int) int { return (n + bs - 1) / bs }

// span returns block i of bs elements of [0, n).
func span(i, bs, n int) (lo, hi int) { return i * bs, min(n, (i+1)*bs) }

// partSum sets dst[j] = Σ_b parts[b·len(dst)+j], adding the parts in order,
// in parallel over blocks of sumCols elements of dst: a kernel's sum of the
// partial sums of its items (the sum of every element in the same order
// whatever the block, so bitwise the same as a serial loop).
type partSum struct {
	job        parallel.Job
	body       items
	dst, parts []float32
}

// sumCols is the number of elements of dst in one item of a partSum.
const sumCols = 1024

func (p *partSum) run(dst, parts []float32) {
	if p.body == nil {
		p.body = p.item
	}
	p.dst, p.parts = dst, parts
	run(&p.job, p.body, blocks(len(dst), sumCols))
	p.dst, p.parts = nil, nil
}

func (p *partSum) item(_, i int) {
	n := len(p.dst)
	lo, hi := span(i, sumCols, n)
	d := p.dst[lo:hi]
	copy(d, p.parts[lo:hi])
	for b := n; b+n <= len(p.parts); b += n {
		AddRow(d, p.parts[b+lo:b+hi])
	}
}

// grow returns buf resized to n elements, reallocating only when it is too small.
func grow[T any](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	return buf[:n]
}

// run runs f over n items on up to GOMAXPROCS workers with the kernel's job.
func run(job *parallel.Job, f items, n int) { job.Run(f, n, 0) }
