//go:build !purego

package scan

import "github.com/mambago/mamba/internal/math32"

// The vector versions of the linear loops (kernel_amd64.s), 16 states per instruction on
// math32's AVX-512 path and 8 on AVX2, for State a multiple of the width (Mamba's default is
// 16); other shapes and the Go path use the Go loops. They compute the same formulas with fused
// multiply-adds and a tree-shaped sum over states, so results differ from the Go loops (and
// between widths) in the last bits; a call uses one path for every work item, so results stay
// bitwise independent of the worker count.

//go:noescape
func recurVec(prev, abar, B, C, du, y, hs *float32, steps, n, stride, bstride int, inPlace, wide bool)

//go:noescape
func reverseVec(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 *float32, steps, n, stride int, wide bool)

//go:noescape
func adjointVec(mu, abar, C, gh *float32, steps, n, stride int, wide bool)

//go:noescape
func duDeltaVec(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 *float32, n int, wide bool)

// The wrappers check every length the assembly relies on, so that a caller's mistake falls back
// to the bounds-checked Go loop instead of touching memory it does not own.

// spans reports whether x holds elements 0, stride, …, (steps−1)·stride.
func spans(x []float32, steps, stride int) bool { return stride > 0 && len(x) > (steps-1)*stride }

// recur runs the recurrence of recurGo.
func recur(h0, abar, B, C, du, y, hs []float32, steps, n, stride, bstride int, inPlace bool) {
	w, T := math32.Lanes(n), steps
	rows := (T-1)*bstride + n
	if w == 0 || T < 1 || len(h0) < n || len(abar) < T*n || len(hs) < T*n || len(B) < rows || len(C) < rows ||
		!spans(du, T, stride) || !spans(y, T, stride) || inPlace && &h0[0] != &hs[0] {
		recurGo(h0, abar, B, C, du, y, hs, steps, n, stride, bstride, inPlace)
		return
	}
	recurVec(&h0[0], &abar[0], &B[0], &C[0], &du[0], &y[0], &hs[0], T, n, stride, bstride, inPlace, w == 16)
}

// scanReverse runs the reverse pass of scanReverseGo.
func scanReverse(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 []float32, steps, stride int) {
	N, T := len(A), steps
	w := math32.Lanes(N)
	if w == 0 || T < 1 || len(mu) < N || len(dA) < N || len(hstart) < N || len(B) < T*N || len(C) < T*N ||
		len(abar) < T*N || len(hs) < T*N || len(db) < T*N || len(dc) < T*N ||
		!spans(dt, T, stride) || !spans(du, T, stride) || !spans(gh, T, stride) || !spans(s1, T, stride) ||
		!spans(s2, T, stride) {
		scanReverseGo(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2, steps, stride)
		return
	}
	reverseVec(&mu[0], &A[0], &B[0], &C[0], &abar[0], &hs[0], &hstart[0], &db[0], &dc[0], &dA[0],
		&dt[0], &du[0], &gh[0], &s1[0], &s2[0], T, N, stride, w == 16)
}

// adjoint runs the adjoint pass of adjointGo.
func adjoint(mu, abar, C, gh []float32, steps, n, stride int) {
	w, T := math32.Lanes(n), steps
	if w == 0 || T < 1 || len(mu) < n || len(abar) < T*n || len(C) < T*n || !spans(gh, T, stride) {
		adjointGo(mu, abar, C, gh, steps, n, stride)
		return
	}
	adjointVec(&mu[0], &abar[0], &C[0], &gh[0], T, n, stride, w == 16)
}

// duDeltaRow runs duDeltaRowGo's row, whole vectors in assembly and the rest in Go.
func duDeltaRow(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 []float32) {
	lanes := math32.Lanes(16) // the path's width
	w := len(u)
	n := 0
	if lanes > 0 {
		n = w / lanes * lanes
	}
	for _, x := range [...][]float32{gu, gd, sumD, sumBias, D, gh, dt, ddt, s1, s2} {
		if len(x) < w {
			n = 0
		}
	}
	if n > 0 {
		duDeltaVec(&gu[0], &gd[0], &sumD[0], &sumBias[0], &u[0], &D[0], &gh[0], &dt[0], &ddt[0], &s1[0], &s2[0], n,
			lanes == 16)
	}
	duDeltaRowGo(gu[n:], gd[n:], sumD[n:], sumBias[n:], u[n:], D[n:], gh[n:], dt[n:], ddt[n:], s1[n:], s2[n:])
}

// prefetchRows asks the cache for width floats of each of rows rows, stride floats apart.
//
//go:noescape
func prefetchRows(p *float32, rows, stride, width int)
