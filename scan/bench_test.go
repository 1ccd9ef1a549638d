package scan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The benchmark shapes of the issue: a training batch, one long sequence, and one very long
// sequence of few channels (time mode).
var benchShapes = []Shape{{8, 512, 512, 16}, {1, 65536, 512, 16}, {1, 1 << 20, 4, 16}}

func benchName(s Shape) string {
	return fmt.Sprintf("b%d_L%d_d%d_N%d", s.Batch, s.Len, s.Channels, s.State)
}

// benchData is one shape's inputs, upstream gradient and outputs for the benchmarks.
type benchData[T float32 | float64] struct {
	in        Inputs[T]
	dout, out []T
	g         Grads[T]
}

// benchCache keeps each shape's data for the whole run, so that every benchmark of a shape
// reads the same memory (fresh allocations are backed by pages of varying size and made the
// same benchmark differ by up to 2×).
var benchCache = map[string]any{}

// benchInputs draws float32 inputs directly (the long shape's float64 copy would not be small).
func benchInputs[T float32 | float64](s Shape) benchData[T] {
	key := fmt.Sprintf("%v %T", s, T(0))
	if d, ok := benchCache[key]; ok {
		return d.(benchData[T])
	}
	r := rand.New(rand.NewPCG(23, 24))
	rnd := func(n int, scale float64) []T {
		x := make([]T, n)
		for i := range x {
			x[i] = T(r.NormFloat64() * scale)
		}
		return x
	}
	tok, rows := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State
	in := Inputs[T]{U: rnd(tok, 1), Delta: rnd(tok, 1), A: rnd(s.Channels*s.State, 0.5), B: rnd(rows, 1),
		C: rnd(rows, 1), D: rnd(s.Channels, 1), Z: rnd(tok, 1), DeltaBias: rnd(s.Channels, 0.5)}
	for i, a := range in.A {
		in.A[i] = T(-math.Exp(float64(a)))
	}
	d := benchData[T]{in: in, dout: rnd(tok, 1), out: make([]T, tok), g: newGrads[T](s, true)}
	benchCache[key] = d
	return d
}

// elementsMetric reports wall-clock nanoseconds per (batch, time, channel, state) element over
// the n runs since start.
func elementsMetric(b *testing.B, s Shape, n int, start time.Time) {
	elems := float64(s.Batch) * float64(s.Len) * float64(s.Channels) * float64(s.State) * float64(n)
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/elems, "ns/elem")
}

func benchKernel[T float32 | float64](b *testing.B, s Shape, k Kernel[T], fwd, bwd bool) {
	d := benchInputs[T](s)
	in, dout, out, g := d.in, d.dout, d.out, d.g
	if err := k.Forward(in, out, nil); err != nil {
		b.Fatal(err)
	}
	start, n := time.Now(), 0
	for b.Loop() {
		n++
		if fwd {
			if err := k.Forward(in, out, nil); err != nil {
				b.Fatal(err)
			}
		}
		if bwd {
			if err := k.Backward(in, dout, nil, g); err != nil {
				b.Fatal(err)
			}
		}
	}
	elementsMetric(b, s, n, start)
}

func benchFast(b *testing.B, fwd, bwd bool) {
	for _, s := range benchShapes {
		b.Run(benchName(s), func(b *testing.B) {
			k, err := New(s, Options{Softplus: true})
			if err != nil {
				b.Fatal(err)
			}
			benchKernel(b, s, k, fwd, bwd)
		})
	}
}

func BenchmarkForward(b *testing.B)         { benchFast(b, true, false) }
func BenchmarkBackward(b *testing.B)        { benchFast(b, false, true) }
func BenchmarkForwardBackward(b *testing.B) { benchFast(b, true, true) }

// BenchmarkPureGo is forward+backward with the pure-Go loops, also where AVX2 is available.
func BenchmarkPureGo(b *testing.B) {
	useAVX2(false)
	defer useAVX2(hasAVX2)
	benchFast(b, true, true)
}

// BenchmarkReference is the float64 reference's forward+backward on the training-batch shape,
// the baseline of the speed-up (the long shape would need 2 GB of float64 activations).
func BenchmarkReference(b *testing.B) {
	s := benchShapes[0]
	b.Run(benchName(s), func(b *testing.B) {
		k, err := NewReference(s, Options{Softplus: true})
		if err != nil {
			b.Fatal(err)
		}
		benchKernel(b, s, k, true, true)
	})
}
