package scan

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/testutil"
)

// onPaths runs f on every path of math32 (and so of the scan's loops) this build and CPU have:
// the Go loops, and AVX2 and AVX-512 where the CPU runs them.
func onPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	best := math32.Current()
	defer func() {
		if err := math32.SetPath(best); err != nil {
			t.Fatal(err)
		}
	}()
	for _, p := range math32.Paths() {
		if err := math32.SetPath(p); err != nil {
			t.Fatal(err)
		}
		t.Run(p.String(), f)
	}
}

// config picks the optional parts of a random case.
type config struct {
	D, Z, Bias, H0, Softplus, Resets bool
}

var allOn = config{D: true, Z: true, Bias: true, H0: true, Softplus: true}

// packed is allOn with documents packed into the rows.
var packed = config{D: true, Z: true, Bias: true, H0: true, Softplus: true, Resets: true}

func normals(r *rand.Rand, n int, scale float64) []float64 { return testutil.Normals(r, n, scale) }

func randF32(r *rand.Rand, n int, scale float64) []float32 { return f32(normals(r, n, scale)) }

// randomInputs draws a case like the reference fixtures: A = −exp(N(0, 0.25)), everything else
// normal; without softplus δ = 0.1·|N(0, 1)| so that Δ stays positive.
func randomInputs(r *rand.Rand, s Shape, c config) Inputs[float64] {
	tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Batch*s.Channels*s.State
	in := Inputs[float64]{U: normals(r, tok, 1), Delta: normals(r, tok, 1), A: normals(r, s.Channels*s.State, 0.5),
		B: normals(r, rows, 1), C: normals(r, rows, 1)}
	for i, a := range in.A {
		in.A[i] = -math.Exp(a)
	}
	if !c.Softplus {
		for i, v := range in.Delta {
			in.Delta[i] = 0.1 * math.Abs(v)
		}
	}
	if c.D {
		in.D = normals(r, s.Channels, 1)
	}
	if c.Z {
		in.Z = normals(r, tok, 1)
	}
	if c.Bias {
		in.DeltaBias = normals(r, s.Channels, 0.5)
		if !c.Softplus {
			for i, v := range in.DeltaBias {
				in.DeltaBias[i] = 0.1 * math.Abs(v)
			}
		}
	}
	if c.H0 {
		in.H0 = normals(r, st, 1)
	}
	if c.Resets {
		// A document starts at about one step in five, and at step 0 of about every other row.
		in.Resets = make([]uint8, s.Batch*s.Len)
		for i := range in.Resets {
			if p := r.Float64(); p < 0.2 || i%s.Len == 0 && p < 0.5 {
				in.Resets[i] = 1
			}
		}
	}
	return in
}

// result is what one forward+backward produces, in float64 whatever the kernel's type.
type result struct {
	out, last                                       []float64
	gU, gDelta, gA, gB, gC, gD, gZ, gDeltaBias, gH0 []float64
}

func (x result) tensors() map[string][]float64 {
	return map[string][]float64{"out": x.out, "last": x.last, "dU": x.gU, "dDelta": x.gDelta, "dA": x.gA,
		"dB": x.gB, "dC": x.gC, "dD": x.gD, "dZ": x.gZ, "dDeltaBias": x.gDeltaBias, "dH0": x.gH0}
}

func newGrads[T float32 | float64](s Shape, withZ bool) Grads[T] {
	tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Batch*s.Channels*s.State
	g := Grads[T]{U: make([]T, tok), Delta: make([]T, tok), A: make([]T, s.Channels*s.State), B: make([]T, rows),
		C: make([]T, rows), D: make([]T, s.Channels), DeltaBias: make([]T, s.Channels), H0: make([]T, st)}
	if withZ {
		g.Z = make([]T, tok)
	}
	return g
}

func widen[T float32 | float64](x []T) []float64 {
	if x == nil {
		return nil
	}
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// runKernel runs forward and backward (all gradients requested) and collects the results.
func runKernel[T float32 | float64](t *testing.T, k Kernel[T], in Inputs[T], dout, dlast []T) result {
	t.Helper()
	s := k.Shape()
	out := make([]T, s.Batch*s.Len*s.Channels)
	last := make([]T, s.Batch*s.Channels*s.State)
	if err := k.Forward(in, out, last); err != nil {
		t.Fatal(err)
	}
	g := newGrads[T](s, in.Z != nil)
	if err := k.Backward(in, dout, dlast, g); err != nil {
		t.Fatal(err)
	}
	return result{out: widen(out), last: widen(last), gU: widen(g.U), gDelta: widen(g.Delta), gA: widen(g.A),
		gB: widen(g.B), gC: widen(g.C), gD: widen(g.D), gZ: widen(g.Z), gDeltaBias: widen(g.DeltaBias), gH0: widen(g.H0)}
}

func reference(t *testing.T, s Shape, softplus bool, in Inputs[float64], dout, dlast []float64) result {
	t.Helper()
	k, err := NewReference(s, Options{Softplus: softplus})
	if err != nil {
		t.Fatal(err)
	}
	return runKernel(t, k, in, dout, dlast)
}

func fast(t *testing.T, s Shape, o Options, in Inputs[float64], dout, dlast []float64) result {
	t.Helper()
	k, err := New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return runKernel(t, k, toF32(in), f32(dout), f32(dlast))
}

// compareResults fails when a tensor's relative L2 error exceeds tol and returns the worst.
func compareResults(t *testing.T, label string, got, want result, tol float64) float64 {
	t.Helper()
	worst := 0.0
	wt := want.tensors()
	for name, g := range got.tensors() {
		w := wt[name]
		if (g == nil) != (w == nil) || len(g) != len(w) {
			t.Errorf("%s: %s: %d elements vs %d", label, name, len(g), len(w))
			continue
		}
		e := testutil.RelL2(g, w)
		worst = max(worst, e)
		testutil.CheckErr(t, label+": "+name+" rel L2", e, tol)
	}
	return worst
}

// sameBits fails unless every tensor is bitwise identical.
func sameBits(t *testing.T, label string, got, want result) {
	t.Helper()
	wt := want.tensors()
	for name, g := range got.tensors() {
		w := wt[name]
		if len(g) != len(w) {
			t.Fatalf("%s: %s lengths %d, %d", label, name, len(g), len(w))
		}
		for i := range g {
			if math.Float64bits(g[i]) != math.Float64bits(w[i]) {
				t.Fatalf("%s: %s[%d] = %v, want %v bit for bit", label, name, i, g[i], w[i])
			}
		}
	}
}
