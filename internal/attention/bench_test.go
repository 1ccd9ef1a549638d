package attention

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mambago/mamba/internal/testutil"
)

// BenchmarkFlash runs the float32 kernel's forward and backward at head size 64, 4 query heads
// over 2 key/value heads, one sequence of L tokens, on GOMAXPROCS workers, and reports the wall
// time per token and query head of the forward (fwd-ns/token-head), the backward
// (bwd-ns/token-head) and the achieved GFLOP/s of both (4·L/2·d multiply-adds per token-head
// forward, counting the causal half only, and 2.5 times that backward: 7 products against 2).
func BenchmarkFlash(b *testing.B) {
	for _, L := range []int{512, 2048} {
		s := Shape{Batch: 1, Len: L, Heads: 4, KVHeads: 2, HeadDim: 64}
		b.Run(fmt.Sprintf("L=%d", L), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			in := to32(randomCase(r, s, 0))
			nq, nk := s.count(queryRows), s.count(keyRows)
			out, dout := make([]float32, nq), testutil.Convert[float32](testutil.Normals(r, nq, 1))
			g := Grads[float32]{Q: make([]float32, nq), K: make([]float32, nk), V: make([]float32, nk)}
			k := newFlash(b, s, Options{})
			var fwd, bwd time.Duration
			n := 0
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
			th := float64(n * s.Batch * s.Len * s.Heads)
			flops := 2 * 2 * float64(L) / 2 * float64(s.HeadDim) // per token-head, forward
			b.ReportMetric(float64(fwd.Nanoseconds())/th, "fwd-ns/token-head")
			b.ReportMetric(float64(bwd.Nanoseconds())/th, "bwd-ns/token-head")
			b.ReportMetric(3.5*flops*th/float64((fwd+bwd).Nanoseconds()), "GFLOP/s")
		})
	}
}

// BenchmarkDecode runs one decode step at batch 1 and 16 against caches of n positions (4 query
// heads over 2 key/value heads of 64), and reports the time per step and per token of the batch.
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
				for b.Loop() {
					if err := d.Step(out, q, kc, vc, n); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/token")
			})
		}
	}
}
