package scan

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestKernelsAgree: the AVX2 chunk loops compute what the pure-Go ones compute, per-step
// scalars strided as in a tile.
func TestKernelsAgree(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2/FMA on this CPU: only the pure-Go loops run")
	}
	r := rand.New(rand.NewPCG(25, 26))
	const stride = 3
	for _, N := range []int{8, 16, 32} {
		for _, T := range []int{1, 5, 33} {
			A := randF32(r, N, 1)
			for i := range A {
				A[i] = -float32(math.Exp(float64(A[i])))
			}
			B, C := randF32(r, T*N, 1), randF32(r, T*N, 1)
			dt, du, gh := randF32(r, T*stride, 1), randF32(r, T*stride, 1), randF32(r, T*stride, 1)
			for i := range dt {
				dt[i] = float32(math.Abs(float64(dt[i])))
			}
			hstart, mu0 := randF32(r, N, 1), randF32(r, N, 1)
			type out struct{ y, abar, hs, mu, db, dc, dA, s1, s2, adj []float32 }
			run := func(rec func(hstart, A, B, C, dt, du, y, abar, hs []float32, steps, stride int),
				rev func(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 []float32, steps, stride int),
				adj func(mu, A, C, dt, gh, abar []float32, steps, stride int)) out {
				o := out{y: make([]float32, T*stride), abar: make([]float32, T*N), hs: make([]float32, T*N),
					mu: append([]float32(nil), mu0...), db: make([]float32, T*N), dc: make([]float32, T*N),
					dA: make([]float32, N), s1: make([]float32, T*stride), s2: make([]float32, T*stride),
					adj: append([]float32(nil), mu0...)}
				rec(hstart, A, B, C, dt, du, o.y, o.abar, o.hs, T, stride)
				rev(o.mu, A, B, C, o.abar, o.hs, hstart, o.db, o.dc, o.dA, dt, du, gh, o.s1, o.s2, T, stride)
				adj(o.adj, A, C, dt, gh, make([]float32, N), T, stride)
				return o
			}
			g := run(scanRecomputeGo, scanReverseGo, scanAdjointGo)
			a := run(scanRecomputeAVX2, scanReverseAVX2, scanAdjointAVX2)
			for name, p := range map[string][2][]float32{"y": {a.y, g.y}, "abar": {a.abar, g.abar}, "hs": {a.hs, g.hs},
				"mu": {a.mu, g.mu}, "db": {a.db, g.db}, "dc": {a.dc, g.dc}, "dA": {a.dA, g.dA}, "s1": {a.s1, g.s1},
				"s2": {a.s2, g.s2}, "adjoint": {a.adj, g.adj}} {
				if e := relL2(p[0], widen(p[1])); e > 1e-5 {
					t.Errorf("N %d T %d: %s differs by %.3g", N, T, name, e)
				}
			}
		}
	}
}

// TestDuDeltaRowAgrees: the AVX2 row loop of the backward's row pass (vector part and tail)
// computes what the pure-Go one computes.
func TestDuDeltaRowAgrees(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2/FMA on this CPU: only the pure-Go loops run")
	}
	r := rand.New(rand.NewPCG(33, 34))
	const w = 19
	in := make([][]float32, 7) // u, D, ĝ, Δ, dΔ/dδ, s1, s2
	for i := range in {
		in[i] = randF32(r, w, 1)
	}
	sums := randF32(r, 2*w, 1)
	var out [2][4][]float32 // du, dδ, sumD, sumBias per path
	for p, row := range []func(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 []float32){duDeltaRowGo, duDeltaRowAVX2} {
		o := &out[p]
		o[0], o[1] = make([]float32, w), make([]float32, w)
		o[2], o[3] = append([]float32(nil), sums[:w]...), append([]float32(nil), sums[w:]...)
		row(o[0], o[1], o[2], o[3], in[0], in[1], in[2], in[3], in[4], in[5], in[6])
	}
	for i, name := range []string{"du", "dδ", "sumD", "sumBias"} {
		if e := relL2(out[1][i], widen(out[0][i])); e > 1e-6 {
			t.Errorf("%s differs by %.3g", name, e)
		}
	}
}
