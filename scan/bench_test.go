package scan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/testutil"
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

// setPath switches math32 (and so the scan's loops) to path p for a benchmark.
func setPath(b *testing.B, p math32.Path) {
	best := math32.Current()
	if err := math32.SetPath(p); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = math32.SetPath(best) })
}

// timed runs one Forward and one Backward of k and returns their wall-clock durations.
func timed[T float32 | float64](b *testing.B, k Kernel[T], d benchData[T]) (fwd, bwd time.Duration) {
	start := time.Now()
	if err := k.Forward(d.in, d.out, nil); err != nil {
		b.Fatal(err)
	}
	mid := time.Now()
	if err := k.Backward(d.in, d.dout, nil, d.g); err != nil {
		b.Fatal(err)
	}
	return mid.Sub(start), time.Since(mid)
}

// reportPerElement reports each duration, summed over n runs, as nanoseconds per (batch, time,
// channel, state) element, under its unit.
func reportPerElement(b *testing.B, s Shape, n int, units []string, sums []time.Duration) {
	elems := float64(s.Batch) * float64(s.Len) * float64(s.Channels) * float64(s.State) * float64(n)
	for i, u := range units {
		b.ReportMetric(float64(sums[i].Nanoseconds())/elems, u)
	}
}

// BenchmarkScan runs the fast kernel's forward and backward on each path of math32 on each shape,
// with Options.Workers 1 and 2 alternated within every iteration (so that both see the same load),
// and reports ns per element of the forward, the backward and both (w1-…, w2-…), the process's
// CPU time per element of the one-worker runs (w1-cpu-ns/elem, steadier than wall-clock time
// on a shared machine) and the speed-up from one to two workers (x-speedup, forward+backward).
func BenchmarkScan(b *testing.B) {
	for _, path := range slices.Backward(math32.Paths()) {
		for _, s := range benchShapes {
			b.Run(path.String()+"/"+benchName(s), func(b *testing.B) {
				setPath(b, path)
				d := benchInputs[float32](s)
				var ks [2]*Fast
				for i := range ks {
					k, err := New(s, Options{Softplus: true, Workers: i + 1})
					if err != nil {
						b.Fatal(err)
					}
					timed(b, k, d)
					ks[i] = k
				}
				var sums [7]time.Duration // forward, backward, both; one worker then two; CPU time of one worker
				n := 0
				for b.Loop() {
					n++
					for i, k := range ks {
						cpu0, _ := testutil.CPUTime()
						fwd, bwd := timed(b, k, d)
						sums[3*i] += fwd
						sums[3*i+1] += bwd
						sums[3*i+2] += fwd + bwd
						if cpu1, ok := testutil.CPUTime(); ok && i == 0 {
							sums[6] += cpu1 - cpu0
						}
					}
				}
				units := []string{"w1-fwd-ns/elem", "w1-bwd-ns/elem", "w1-ns/elem", "w2-fwd-ns/elem", "w2-bwd-ns/elem",
					"w2-ns/elem"}
				if _, ok := testutil.CPUTime(); ok {
					units = append(units, "w1-cpu-ns/elem")
				}
				reportPerElement(b, s, n, units, sums[:len(units)])
				b.ReportMetric(float64(sums[2])/float64(sums[5]), "x-speedup")
			})
		}
	}
}

// BenchmarkReference runs the float64 reference's forward+backward on the training-batch shape
// (the long shape would need 2 GB of float64 activations), alternated within every iteration with
// the fast kernel on one worker on each path, and reports ns per element of each and the fast
// kernel's speed-up over the reference (x-…, forward+backward).
func BenchmarkReference(b *testing.B) {
	s := benchShapes[0]
	b.Run(benchName(s), func(b *testing.B) {
		ref, err := NewReference(s, Options{Softplus: true})
		if err != nil {
			b.Fatal(err)
		}
		fast, err := New(s, Options{Softplus: true, Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		d64, d32 := benchInputs[float64](s), benchInputs[float32](s)
		paths := math32.Paths()
		best := math32.Current()
		defer func() { _ = math32.SetPath(best) }()
		run := func(p math32.Path) time.Duration {
			if err := math32.SetPath(p); err != nil {
				b.Fatal(err)
			}
			fwd, bwd := timed(b, fast, d32)
			return fwd + bwd
		}
		for _, p := range paths {
			run(p)
		}
		sums := make([]time.Duration, 1+len(paths))
		n := 0
		for b.Loop() {
			n++
			fwd, bwd := timed(b, ref, d64)
			sums[0] += fwd + bwd
			for i, p := range paths {
				sums[1+i] += run(p)
			}
		}
		units := []string{"ref-ns/elem"}
		for i, p := range paths {
			units = append(units, p.String()+"-ns/elem")
			b.ReportMetric(float64(sums[0])/float64(sums[1+i]), "x-speedup-"+p.String())
		}
		reportPerElement(b, s, n, units, sums)
	})
}

// BenchmarkStep runs Stepper.Step over all channels of d768's d_inner (1536, State 16) for 1 and
// 16 rows on each path, and reports ns per (row, channel, state) element and per row-token of
// one layer.
func BenchmarkStep(b *testing.B) {
	for _, path := range slices.Backward(math32.Paths()) {
		for _, rows := range []int{1, 16} {
			s := Shape{rows, 1, 1536, 16}
			b.Run(fmt.Sprintf("%v/rows%d", path, rows), func(b *testing.B) {
				setPath(b, path)
				d := benchInputs[float32](s)
				p, err := NewStepper(s, Options{Softplus: true})
				if err != nil {
					b.Fatal(err)
				}
				h := make([]float32, s.Batch*s.Channels*s.State)
				for b.Loop() {
					if err := p.Step(d.in, h, d.out, 0, s.Channels); err != nil {
						b.Fatal(err)
					}
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(ns/float64(s.Batch*s.Channels*s.State), "ns/elem")
				b.ReportMetric(ns/float64(s.Batch), "ns/row")
			})
		}
	}
}
