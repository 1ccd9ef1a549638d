package scan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/math32"
)

// TestPathsMatchReference: every path's loops against the reference, State a multiple of 16,
// of 8 only, and of neither (the Go loops on every path).
func TestPathsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	for _, s := range []Shape{{2, 37, 40, 16}, {1, 300, 3, 8}, {2, 9, 5, 24}, {1, 20, 2, 5}, {2, 11, 17, 32}} {
		in, dout, dlast := randomCase(r, s, allOn)
		want := reference(t, s, true, in, dout, dlast)
		onPaths(t, func(t *testing.T) {
			got := fast(t, s, Options{Softplus: true, Chunk: 8}, in, dout, dlast)
			t.Logf("%v: worst rel L2 %.3g", s, compareResults(t, fmt.Sprint(s), got, want, 1e-4))
		})
	}
}

// TestLargeDelta: δ far above the softplus threshold (Δ = δ) and far below it (Δ ≈ 0), every
// path against the reference.
func TestLargeDelta(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	s := Shape{2, 20, 5, 8}
	in, dout, dlast := randomCase(r, s, allOn)
	for i := range in.Delta {
		in.Delta[i] *= 25
	}
	want := reference(t, s, true, in, dout, dlast)
	onPaths(t, func(t *testing.T) {
		compareResults(t, "large δ", fast(t, s, Options{Softplus: true, Chunk: 6}, in, dout, dlast), want, 1e-4)
	})
}

// TestNaN: a NaN Δ gives NaN Ā (through math32's exp) in the recomputation and the adjoint pass
// on every path, and a NaN δ reaches every later output of its channel and the final state:
// non-finite detection upstream relies on NaN propagating.
func TestNaN(t *testing.T) {
	nan := float32(math.NaN())
	isNaN := func(v float32) bool { return v != v }
	onPaths(t, func(t *testing.T) {
		const N = 16
		A := make([]float32, N)
		for n := range A {
			A[n] = -float32(n + 1)
		}
		abar, hs, mu := make([]float32, N), make([]float32, N), make([]float32, N)
		scanRecompute(make([]float32, N), A, make([]float32, N), make([]float32, N), []float32{nan}, []float32{0},
			make([]float32, 1), abar, hs, 1, 1)
		scanAdjoint(mu, A, make([]float32, N), []float32{nan}, []float32{1}, make([]float32, N), 1, 1)
		for n := range A {
			if !isNaN(abar[n]) || !isNaN(mu[n]) {
				t.Errorf("state %d: exp(NaN) gave Ā %v, adjoint %v", n, abar[n], mu[n])
			}
		}
		s := Shape{1, 6, 8, 16}
		k, err := New(s, Options{Softplus: true, Chunk: 4})
		if err != nil {
			t.Fatal(err)
		}
		in := toF32(randomInputs(rand.New(rand.NewPCG(31, 32)), s, allOn))
		const c, t0 = 5, 2
		in.Delta[t0*s.Channels+c] = nan
		out, last := make([]float32, s.Len*s.Channels), make([]float32, s.Channels*s.State)
		if err := k.Forward(in, out, last); err != nil {
			t.Fatal(err)
		}
		for tt := range s.Len {
			if v := out[tt*s.Channels+c]; isNaN(v) != (tt >= t0) {
				t.Errorf("step %d: out %v with NaN δ at step %d", tt, v, t0)
			}
		}
		for _, v := range last[c*s.State : (c+1)*s.State] {
			if !isNaN(v) {
				t.Errorf("final state %v with a NaN δ", v)
			}
		}
	})
	if len(math32.Paths()) == 1 {
		t.Log("only the Go path in this build: no vector loops to check")
	}
}
