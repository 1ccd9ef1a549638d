package scan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
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
				if a < expLo {
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
			if x64 > softplusThreshold {
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
