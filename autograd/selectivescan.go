package autograd

import (
	"fmt"

	"github.com/mambago/mamba/scan"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SelectiveScan is the selective scan of Mamba (package scan) as a graph op:
// for each sequence b, channel d, state n and time t,
//
//	Δ_t = softplus(δ_t + bias_d) (or δ_t + bias_d without o.Softplus)
//	h_t = exp(Δ_t·A_{d,n})·h_{t−1} + Δ_t·B_{t,n}·u_t,  h_{−1} = 0
//	y_t = Σ_n C_{t,n}·h_{t,n} + D_d·u_t,  out_t = y_t·silu(z_t)
//
// Inputs are token-major, rows = batch·L: u, delta, z (batch·L, ch); A (ch, N);
// B, C (batch·L, N); D, deltaBias (ch). D, z and deltaBias may be nil. The
// output is (batch·L, ch). A float32 graph runs scan.New (the fast kernel), a
// float64 graph scan.NewReference; the backward kernel runs once per step and
// yields every input's gradient.
func SelectiveScan(batch int, u, delta, A, B, C, D, z, deltaBias *gorgonia.Node, o scan.Options) (*gorgonia.Node, error) {
	const op = "SelectiveScan"
	nodes, names, dt, rows, ch, err := tokenInputs(op, batch, arg{"u", u, false}, arg{"delta", delta, false},
		arg{"A", A, false}, arg{"B", B, false}, arg{"C", C, false}, arg{"D", D, true}, arg{"z", z, true}, arg{"deltaBias", deltaBias, true})
	if err != nil {
		return nil, err
	}
	if err := checkShape(op, "A", A, ch, -1); err != nil {
		return nil, err
	}
	n := A.Shape()[1]
	want := map[string][]int{"u": {rows, ch}, "delta": {rows, ch}, "A": {ch, n}, "B": {rows, n}, "C": {rows, n}, "D": {ch}, "z": {rows, ch}, "deltaBias": {ch}}
	in := make([]tensor.Shape, len(nodes))
	for i, name := range names {
		if err := checkShape(op, name, nodes[i], want[name]...); err != nil {
			return nil, err
		}
		in[i] = tensor.Shape(want[name])
	}
	sh := scan.Shape{Batch: batch, Len: rows / batch, Channels: ch, State: n}
	lay := scanLayout{hasD: D != nil, hasZ: z != nil, hasBias: deltaBias != nil}
	var k32 kernel[float32]
	var k64 kernel[float64]
	switch dt {
	case tensor.Float32:
		k, err := scan.New(sh, o)
		if err != nil {
			return nil, fmt.Errorf("autograd: %s: %w", op, err)
		}
		k32 = &scanKernel[float32]{scanLayout: lay, k: k}
	case tensor.Float64:
		k, err := scan.NewReference(sh, o)
		if err != nil {
			return nil, fmt.Errorf("autograd: %s: %w", op, err)
		}
		k64 = &scanKernel[float64]{scanLayout: lay, k: k}
	}
	s := spec{
		name: fmt.Sprintf("%s{batch=%d,softplus=%t,chunk=%d,D=%t,z=%t,deltaBias=%t}",
			op, batch, o.Softplus, o.Chunk, lay.hasD, lay.hasZ, lay.hasBias),
		dtype: dt,
		in:    in,
		out:   tensor.Shape{rows, ch},
	}
	return build(s, func() kernel[float32] { return k32 }, func() kernel[float64] { return k64 }, nodes...)
}

// scanLayout says which optional inputs follow u, delta, A, B, C (in the
// order D, z, deltaBias).
type scanLayout struct{ hasD, hasZ, hasBias bool }

// scanKernel adapts a scan.Kernel to a fused op: the forward and the backward
// are the scan kernel's own (its backward derivation is in package scan).
type scanKernel[T float] struct {
	scanLayout
	k scan.Kernel[T]
}

// split maps the op's inputs (or gradients) onto the scan's fields.
func (s *scanKernel[T]) split(x [][]T) (u, delta, a, b, c, d, z, bias []T) {
	u, delta, a, b, c = x[0], x[1], x[2], x[3], x[4]
	i := 5
	next := func(has bool) []T {
		if !has {
			return nil
		}
		i++
		return x[i-1]
	}
	d, z, bias = next(s.hasD), next(s.hasZ), next(s.hasBias)
	return
}

func (s *scanKernel[T]) inputs(in [][]T) scan.Inputs[T] {
	u, delta, a, b, c, d, z, bias := s.split(in)
	return scan.Inputs[T]{U: u, Delta: delta, A: a, B: b, C: c, D: d, Z: z, DeltaBias: bias}
}

func (s *scanKernel[T]) forward(in [][]T, out []T) error {
	return s.k.Forward(s.inputs(in), out, nil)
}

func (s *scanKernel[T]) backward(in [][]T, dout []T, din [][]T) error {
	u, delta, a, b, c, d, z, bias := s.split(din)
	g := scan.Grads[T]{U: u, Delta: delta, A: a, B: b, C: c, D: d, Z: z, DeltaBias: bias}
	return s.k.Backward(s.inputs(in), dout, nil, g)
}
