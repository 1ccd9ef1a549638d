package scan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/math32"
)

// bothPaths runs f with the pure-Go loops and, where the CPU has them, the AVX2 ones.
func bothPaths(t *testing.T, f func(t *testing.T)) {
	t.Run("go", func(t *testing.T) {
		useAVX2(false)
		defer useAVX2(hasAVX2)
		f(t)
	})
	if hasAVX2 {
		t.Run("avx2", f)
	}
}

func randF32(r *rand.Rand, n int, scale float64) []float32 { return f32(normals(r, n, scale)) }

// TestExp8: the vector exp (through scanRecompute's Ā) against math.Exp, and its underflow.
func TestExp8(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		const N = 64
		A := make([]float32, N)
		worst := 0.0
		for start := -90.0; start < 88; start += 0.37 {
			for n := range A {
				A[n] = float32(start + float64(n)*0.0059)
			}
			abar, hs := make([]float32, N), make([]float32, N)
			scanRecompute(make([]float32, N), A, make([]float32, N), make([]float32, N), []float32{1}, []float32{0},
				make([]float32, 1), abar, hs, 1, 1)
			for n, a := range A {
				want := math.Exp(float64(a))
				if a < math32.ExpLo {
					if abar[n] != 0 {
						t.Fatalf("exp(%v) = %v, want 0", a, abar[n])
					}
					continue
				}
				worst = max(worst, math.Abs(float64(abar[n])-want)/want)
			}
		}
		t.Logf("worst relative error %.3g", worst)
		if worst > 2.5e-7 {
			t.Errorf("relative error %.3g", worst)
		}
	})
}

// TestPathsMatchReference: both loop implementations against the reference, State a multiple of
// 8 (the assembly's) and not.
func TestPathsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	for _, s := range []Shape{{2, 37, 40, 16}, {1, 300, 3, 8}, {2, 9, 5, 24}, {1, 20, 2, 5}} {
		in, dout, dlast := randomCase(r, s, allOn)
		want := reference(t, s, true, in, dout, dlast)
		bothPaths(t, func(t *testing.T) {
			got := fast(t, s, Options{Softplus: true, Chunk: 8}, in, dout, dlast)
			t.Logf("%v: worst rel L2 %.3g", s, compareResults(t, fmt.Sprint(s), got, want, 1e-4))
		})
	}
}

// TestRows: softplusRow and sigmoidRow (vector and tail) against float64 math.
func TestRows(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		const n = 73001
		x, d, sg := make([]float32, n), make([]float32, n), make([]float32, n)
		for j := range x {
			x[j] = float32(-60 + 90*float64(j)/n)
		}
		sigmoidRow(x, sg)
		sp := append([]float32(nil), x...)
		softplusRow(sp, d)
		worst := [3]float64{}
		for j, v := range x {
			x64 := float64(v)
			wantSP, wantD := math.Log1p(math.Exp(x64)), 1/(1+math.Exp(-x64))
			if x64 > math32.SoftplusThreshold {
				wantSP, wantD = x64, 1
			}
			for k, e := range [3]float64{
				math.Abs(float64(sp[j])-wantSP) / wantSP,
				math.Abs(float64(d[j])-wantD) / wantD,
				math.Abs(float64(sg[j])-1/(1+math.Exp(-x64))) * (1 + math.Exp(-x64)),
			} {
				worst[k] = max(worst[k], e)
			}
		}
		t.Logf("relative errors: softplus %.3g, derivative %.3g, sigmoid %.3g", worst[0], worst[1], worst[2])
		if worst[0] > 3e-7 || worst[1] > 3e-7 || worst[2] > 3e-7 {
			t.Errorf("relative errors: softplus %.3g, derivative %.3g, sigmoid %.3g", worst[0], worst[1], worst[2])
		}
	})
}

// TestLargeDelta: δ far above the softplus threshold (Δ = δ) and far below it (Δ ≈ 0), both loop
// paths against the reference.
func TestLargeDelta(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	s := Shape{2, 20, 5, 8}
	in, dout, dlast := randomCase(r, s, allOn)
	for i := range in.Delta {
		in.Delta[i] *= 25
	}
	want := reference(t, s, true, in, dout, dlast)
	bothPaths(t, func(t *testing.T) {
		compareResults(t, "large δ", fast(t, s, Options{Softplus: true, Chunk: 6}, in, dout, dlast), want, 1e-4)
	})
}

// TestNaN: a NaN argument stays NaN through exp (in the scan loops), softplus and sigmoid on
// both loop paths, and a NaN δ reaches every later output of its channel and the final state:
// non-finite detection upstream relies on NaN propagating.
func TestNaN(t *testing.T) {
	nan := float32(math.NaN())
	isNaN := func(v float32) bool { return v != v }
	bothPaths(t, func(t *testing.T) {
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
		x, d, sg := make([]float32, 19), make([]float32, 19), make([]float32, 19)
		x[3], x[17] = nan, nan // in a group of eight and in the tail
		sigmoidRow(x, sg)
		softplusRow(x, d)
		for _, j := range []int{3, 17} {
			if !isNaN(x[j]) || !isNaN(d[j]) || !isNaN(sg[j]) {
				t.Errorf("element %d: softplus %v, derivative %v, sigmoid %v of NaN", j, x[j], d[j], sg[j])
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
}
