package autograd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/scan"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// scanCase is a selective scan of the given sizes, with or without the
// optional inputs (D, z, deltaBias all present or all absent).
type scanCase struct {
	batch, l, ch, n int
	optional        bool
	o               scan.Options
}

func (c scanCase) shapes() [][]int {
	rows := c.batch * c.l
	s := [][]int{{rows, c.ch}, {rows, c.ch}, {c.ch, c.n}, {rows, c.n}, {rows, c.n}}
	if c.optional {
		s = append(s, []int{c.ch}, []int{rows, c.ch}, []int{c.ch})
	}
	return s
}

func (c scanCase) apply(in []*gorgonia.Node) (*gorgonia.Node, error) {
	var d, z, bias *gorgonia.Node
	if c.optional {
		d, z, bias = in[5], in[6], in[7]
	}
	return SelectiveScan(c.batch, in[0], in[1], in[2], in[3], in[4], d, z, bias, c.o)
}

// vals draws inputs in the ranges a Mamba block produces: A < 0, and Δ > 0
// when there is no softplus.
func (c scanCase) vals(rng *rand.Rand) func() [][]float64 {
	return func() [][]float64 {
		var v [][]float64
		for i, s := range c.shapes() {
			x := randn(rng, size(s), 1)
			switch {
			case i == 1 && !c.o.Softplus:
				for j := range x {
					x[j] = 0.05 + 0.3*math.Abs(x[j])
				}
			case i == 2:
				for j := range x {
					x[j] = -math.Exp(0.5 * x[j])
				}
			}
			v = append(v, x)
		}
		return v
	}
}

func TestSelectiveScanGradFD(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, c := range []scanCase{
		{batch: 2, l: 5, ch: 3, n: 4, optional: true, o: scan.Options{Softplus: true, Chunk: 2}},
		{batch: 1, l: 1, ch: 2, n: 1, optional: true, o: scan.Options{Softplus: true}},
		{batch: 3, l: 3, ch: 2, n: 2, o: scan.Options{Chunk: 1}},
	} {
		r := newRig(t, tensor.Float64, c.shapes(), 33, c.apply)
		checkGradFD(t, r, c.vals(rng), 1e-6)
	}
}

// countingKernel counts the backward runs of the scan kernel it wraps.
type countingKernel struct {
	scan.Kernel[float64]
	backwards int
}

func (k *countingKernel) Backward(in scan.Inputs[float64], dout, dlast []float64, g scan.Grads[float64]) error {
	k.backwards++
	return k.Kernel.Backward(in, dout, dlast, g)
}

// TestSelectiveScanDirect runs the graph twice on new inputs and checks that
// the scan's backward kernel ran exactly once per step and that every graph
// gradient equals the kernel's own backward with dout = R.
func TestSelectiveScanDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(34, 35))
	c := scanCase{batch: 2, l: 7, ch: 3, n: 2, optional: true, o: scan.Options{Softplus: true, Chunk: 3}}
	r := newRig(t, tensor.Float64, c.shapes(), 36, c.apply)
	var counter *countingKernel
	for _, n := range r.g.AllNodes() {
		if op, ok := n.Op().(*fusedOp[float64]); ok {
			sk := op.k.(*scanKernel[float64])
			counter = &countingKernel{Kernel: sk.k}
			sk.k = counter
		}
	}
	sh := scan.Shape{Batch: c.batch, Len: c.l, Channels: c.ch, State: c.n}
	for step := 1; step <= 2; step++ {
		v := c.vals(rng)()
		out, _, grads := r.run(t, v)
		if counter.backwards != step {
			t.Fatalf("after step %d the scan backward ran %d times, want %d", step, counter.backwards, step)
		}
		ref, err := scan.NewReference(sh, c.o)
		if err != nil {
			t.Fatal(err)
		}
		in := scan.Inputs[float64]{U: v[0], Delta: v[1], A: v[2], B: v[3], C: v[4], D: v[5], Z: v[6], DeltaBias: v[7]}
		want := make([]float64, len(out))
		if err := ref.Forward(in, want, nil); err != nil {
			t.Fatal(err)
		}
		if e := maxRelErr(out, want); e != 0 {
			t.Errorf("step %d: output differs from the kernel's by %.3g", step, e)
		}
		d := make([][]float64, len(v))
		for i := range v {
			d[i] = make([]float64, len(v[i]))
		}
		g := scan.Grads[float64]{U: d[0], Delta: d[1], A: d[2], B: d[3], C: d[4], D: d[5], Z: d[6], DeltaBias: d[7]}
		if err := ref.Backward(in, r.w, nil, g); err != nil {
			t.Fatal(err)
		}
		for i := range d {
			if e := maxRelErr(grads[i], d[i]); e != 0 {
				t.Errorf("step %d: gradient of input %d differs from the kernel's backward by %.3g", step, i, e)
			}
		}
	}
}

func TestSelectiveScanFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	for _, c := range []scanCase{
		{batch: 2, l: 70, ch: 8, n: 4, optional: true, o: scan.Options{Softplus: true, Chunk: 16}},
		{batch: 1, l: 33, ch: 5, n: 3, o: scan.Options{}},
	} {
		r32 := newRig(t, tensor.Float32, c.shapes(), 39, c.apply)
		r64 := newRig(t, tensor.Float64, c.shapes(), 39, c.apply)
		checkFloat32(t, r32, r64, c.vals(rng)(), 1e-5)
	}
}
