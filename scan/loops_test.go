package scan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/testutil"
)

// loopsOut is what the chunk loops produce on one random case.
type loopsOut struct{ y, abar, hs, mu, db, dc, dA, s1, s2, adj, step, stepY []float32 }

// runLoops runs the recomputation, the reverse pass, the adjoint pass and the in-place
// recurrence (Stepper's, over T channels) on the current path, per-step scalars strided as in a
// tile.
func runLoops(A, B, C, dt, du, gh, hstart, mu0 []float32, T, stride int) loopsOut {
	N := len(A)
	z := func(n int) []float32 { return make([]float32, n) }
	o := loopsOut{y: z(T * stride), abar: z(T * N), hs: z(T * N), mu: append([]float32(nil), mu0...), db: z(T * N),
		dc: z(T * N), dA: z(N), s1: z(T * stride), s2: z(T * stride), adj: append([]float32(nil), mu0...), step: z(T * N),
		stepY: z(T * stride)}
	scanRecompute(hstart, A, B, C, dt, du, o.y, o.abar, o.hs, T, stride)
	scanReverse(o.mu, A, B, C, o.abar, o.hs, hstart, o.db, o.dc, o.dA, dt, du, gh, o.s1, o.s2, T, stride)
	scanAdjoint(o.adj, A, C, dt, gh, z(T*N), T, stride)
	copy(o.step, B) // T channels' states
	recur(o.step, o.abar, C, B, du, o.stepY, o.step, T, N, stride, 0, true)
	return o
}

// TestLoopsAgree: on every vector path the assembly loops compute what the Go loops compute
// (relative L2 ≤ 1e-5), for State a multiple of 16, of 8 only, and steps 1, 5, 33.
func TestLoopsAgree(t *testing.T) {
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
			var want loopsOut
			onPaths(t, func(t *testing.T) {
				got := runLoops(A, B, C, dt, du, gh, hstart, mu0, T, stride)
				if math32.Current() == math32.Go {
					want = got
					return
				}
				for name, p := range map[string][2][]float32{"y": {got.y, want.y}, "abar": {got.abar, want.abar},
					"hs": {got.hs, want.hs}, "mu": {got.mu, want.mu}, "db": {got.db, want.db}, "dc": {got.dc, want.dc},
					"dA": {got.dA, want.dA}, "s1": {got.s1, want.s1}, "s2": {got.s2, want.s2},
					"adjoint": {got.adj, want.adj}, "step": {got.step, want.step}, "step y": {got.stepY, want.stepY}} {
					testutil.Close(t, fmt.Sprintf("N %d T %d: %s", N, T, name), p[0], p[1], 1e-5)
				}
			})
		}
	}
}

// TestDuDeltaRowAgrees: on every vector path the row loop of the backward's row pass (vector
// part and tail) computes what the Go loop computes.
func TestDuDeltaRowAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	const w = 37
	in := make([][]float32, 7) // u, D, ĝ, Δ, dΔ/dδ, s1, s2
	for i := range in {
		in[i] = randF32(r, w, 1)
	}
	sums := randF32(r, 2*w, 1)
	var want [4][]float32 // du, dδ, sumD, sumBias
	onPaths(t, func(t *testing.T) {
		var o [4][]float32
		o[0], o[1] = make([]float32, w), make([]float32, w)
		o[2], o[3] = append([]float32(nil), sums[:w]...), append([]float32(nil), sums[w:]...)
		duDeltaRow(o[0], o[1], o[2], o[3], in[0], in[1], in[2], in[3], in[4], in[5], in[6])
		if math32.Current() == math32.Go {
			want = o
			return
		}
		for i, name := range []string{"du", "dδ", "sumD", "sumBias"} {
			testutil.Close(t, name, o[i], want[i], 1e-6)
		}
	})
}
