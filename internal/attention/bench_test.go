package attention

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/testutil"
)

// BenchmarkFlash runs the float32 kernel's forward and backward, with each loop path, at head size
// 64, 4 query heads over 2 key/value heads, one sequence of L tokens, on one worker and on
// GOMAXPROCS, and reports per token and query head the wall time of the forward
// (fwd-ns/token-head) and the backward (bwd-ns/token-head), the CPU time of both
// (cpu-ns/token-head: the measure to trust on a loaded machine), and the GFLOP per CPU second
// (4·L/2·d multiply-adds per token-head forward, the causal half, and 2.5 times that backward:
// 5 products of the same size against 2). The pure-Go loops run at L 512 only (about 12 times
// slower).
//
// On the 2-core dev box (AMD EPYC, AVX-512 double-pumped), 2026-12-01, while other jobs kept the
// load between 30 and 50 (wall times swung 2–3×), -benchtime 3x, two runs, CPU time per
// token-head of forward and backward: pure Go 65–68 µs at L 512 (2.6–3.5 GFLOP per CPU second);
// AVX2 5.2–5.8 µs at L 512 and 18.5–21.9 µs at L 2048 (39–50 GFLOP/cpu-s); AVX-512 5.4–6.7 µs and
// 17.7–19.3 µs (34–52 GFLOP/cpu-s), about the AVX2 speed on this CPU. OpenBLAS's sgemm peaks at
// 85 GFLOP/s on one core here.
func BenchmarkFlash(b *testing.B) {
	for _, path := range loopPaths() {
		for _, L := range []int{512, 2048} {
			if path == "go" && L > 512 && len(loopPaths()) > 1 {
				continue
			}
			for _, workers := range []int{1, 0} {
				s := Shape{Batch: 1, Len: L, Heads: 4, KVHeads: 2, HeadDim: 64}
				b.Run(fmt.Sprintf("%s/L=%d/workers=%d", path, L, workers), func(b *testing.B) {
					useAsm(path)
					defer useAsm(bestPath())
					r := rand.New(rand.NewPCG(1, 2))
					in := to32(randomCase(r, s, 0))
					nq, nk := s.count(queryRows), s.count(keyRows)
					out, dout := make([]float32, nq), testutil.Convert[float32](testutil.Normals(r, nq, 1))
					g := Grads[float32]{Q: make([]float32, nq), K: make([]float32, nk), V: make([]float32, nk)}
					k := newFlash(b, s, Options{Workers: workers})
					var fwd, bwd time.Duration
					n := 0
					c0, cpuOK := testutil.CPUTime()
					for b.Loop() {
						t0 := time.Now()
						if err := k.Forward(in, out); err != nil {
							b.Fatal(err)
						}
						t1 := time.Now()
						if err := k.Backward(in, out, dout, g); err != nil {
							b.Fatal(err)
						}
						fwd, bwd, n = fwd+t1.Sub(t0), bwd+time.Since(t1), n+1
					}
					c1, _ := testutil.CPUTime()
					th := float64(n * s.Batch * s.Len * s.Heads)
					b.ReportMetric(float64(fwd.Nanoseconds())/th, "fwd-ns/token-head")
					b.ReportMetric(float64(bwd.Nanoseconds())/th, "bwd-ns/token-head")
					if cpuOK {
						flops := 3.5 * 2 * 2 * float64(L) / 2 * float64(s.HeadDim) * th
						b.ReportMetric(float64((c1-c0).Nanoseconds())/th, "cpu-ns/token-head")
						b.ReportMetric(flops/float64((c1-c0).Nanoseconds()), "GFLOP/cpu-s")
					}
				})
			}
		}
	}
}

// BenchmarkDecode runs one decode step at batch 1 and 16 against caches of n positions (4 query
// heads over 2 key/value heads of 64), and reports the wall and CPU time per step and token of
// the batch.
//
// Same box and load, -benchtime 200x: CPU time per token 26 µs at n 512 (batch 1 and 16),
// 127 µs (batch 1) and 212 µs (batch 16) at n 2048, 1.1 ms (batch 1) and 2.0 ms (batch 16) at
// n 16384, where each token reads its sequence's 16.8 MB of keys and values (8 GB/s per core).
func BenchmarkDecode(b *testing.B) {
	for _, batch := range []int{1, 16} {
		for _, n := range []int{512, 2048, 16384} {
			s := Shape{Batch: batch, Len: n, Heads: 4, KVHeads: 2, HeadDim: 64}
			b.Run(fmt.Sprintf("batch=%d/n=%d", batch, n), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				nk := s.count(keyRows)
				kc, vc := testutil.Convert[float32](testutil.Normals(r, nk, 1)), testutil.Convert[float32](testutil.Normals(r, nk, 1))
				q := testutil.Convert[float32](testutil.Normals(r, s.count(stepRows), 1))
				out := make([]float32, len(q))
				d, err := NewDecoder(s, Options{})
				if err != nil {
					b.Fatal(err)
				}
				c0, cpuOK := testutil.CPUTime()
				for b.Loop() {
					if err := d.Step(out, q, kc, vc, n); err != nil {
						b.Fatal(err)
					}
				}
				c1, _ := testutil.CPUTime()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/token")
				if cpuOK {
					b.ReportMetric(float64((c1-c0).Nanoseconds())/float64(b.N*batch), "cpu-ns/token")
				}
			})
		}
	}
}

// BenchmarkSpec is the attention op of the Transformer++ training graph at the shape of
// configs/bench-transformer.json (batch 8 × 512 tokens, 4 heads of 64, θ = 10⁴): the rotations,
// Flash and the copy of the output, forward and backward, on GOMAXPROCS workers.
func BenchmarkSpec(b *testing.B) {
	s := Spec{Batch: 8, Len: 512, Heads: 4, KVHeads: 4, HeadDim: 64, RopeTheta: 10000}
	r := rand.New(rand.NewPCG(1, 2))
	in := to32s(specInputs(r, s))
	dout := testutil.Convert[float32](testutil.Normals(r, kernel.Size(s.Output()), 1))
	k, err := kernel.CPU{}.New(s)
	if err != nil {
		b.Fatal(err)
	}
	out, din := specRun(k, s, in, dout)
	var fwd, bwd time.Duration
	for b.Loop() {
		t0 := time.Now()
		k.Forward(in, out)
		t1 := time.Now()
		k.Backward(in, dout, din)
		fwd, bwd = fwd+t1.Sub(t0), bwd+time.Since(t1)
	}
	b.ReportMetric(float64(fwd.Microseconds())/1e3/float64(b.N), "fwd-ms")
	b.ReportMetric(float64(bwd.Microseconds())/1e3/float64(b.N), "bwd-ms")
}
