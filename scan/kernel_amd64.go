package scan

import (
	"math"

	"github.com/mambago/mamba/internal/math32"
	"golang.org/x/sys/cpu"
)

// AVX2/FMA versions of the chunk loops (kernel_amd64.s), eight states per instruction. They need
// State to be a multiple of 8 (Mamba's default is 16); other shapes use the pure-Go loops.
// They compute the same formulas with fused multiply-adds and a tree-shaped sum over states, so
// results differ from the pure-Go loops in the last bits; on a given machine one path is used
// for every work item, so they stay bitwise independent of the worker count.

// hasAVX2 reports whether the CPU runs the assembly loops.
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func init() {
	if hasAVX2 {
		useAVX2(true)
	}
}

// useAVX2 switches between the assembly and the pure-Go loops (tests run both).
func useAVX2(on bool) {
	scanRecompute, scanReverse, scanAdjoint = scanRecomputeGo, scanReverseGo, scanAdjointGo
	softplusRow, sigmoidRow, duDeltaRow = softplusRowGo, sigmoidRowGo, duDeltaRowGo
	if on {
		scanRecompute, scanReverse, scanAdjoint = scanRecomputeAVX2, scanReverseAVX2, scanAdjointAVX2
		softplusRow, sigmoidRow, duDeltaRow = softplusRowAVX2, sigmoidRowAVX2, duDeltaRowAVX2
	}
}

// The vector exp reduces x = k·ln2 + r with |r| ≤ ln2/2 and evaluates e^r by a polynomial: a
// table of 2^(j/64) as in math32.Exp would need a gather.
const (
	// ln2Hi has its 9 low mantissa bits zero, so k·ln2Hi is exact for |k| ≤ 2^8 and
	// x − k·ln2Hi is exact (Cody–Waite range reduction); ln2Lo = ln 2 − ln2Hi.
	ln2Hi = 0.693145751953125
	ln2Lo = 1.428606820309417e-06
	// Coefficients of exp(r) ≈ 1 + r·(c1 + r·(c2 + … + r·c6)) on |r| ≤ ln2/2: Chebyshev
	// interpolation (relative error 2.5e-9) with c1 = 1.0000000377 then rounded to 1, which
	// adds at most 1.3e-8; together ≤ 1.6e-8 in exact arithmetic, about 1 ulp in float32.
	expC1 = 1
	expC2 = 0.5000000047117784
	expC3 = 0.16666415514653618
	expC4 = 0.04166635289669687
	expC5 = 0.008375126398132253
	expC6 = 0.0013941108438804987
)

// vecConsts holds the constants of math32.Exp and math32.Softplus broadcast to eight lanes, in
// the order the assembly reads them.
var vecConsts = [...][8]float32{
	splat(math32.Log2E), splat(math32.RoundMagic), splat(-ln2Hi), splat(-ln2Lo),
	splat(expC6), splat(expC5), splat(expC4), splat(expC3), splat(expC2), splat(expC1), splat(1),
	splat(math32.ExpLo), splat(math32.ExpHi), splat(math.Float32frombits(math32.RoundMagicBits - 127)),
	splat(2), splat(1.0 / 3), splat(1.0 / 5), splat(1.0 / 7), splat(1.0 / 9), splat(1.0 / 11), splat(1.0 / 13),
	splat(math32.SoftplusThreshold), splat(math.Float32frombits(1<<31 - 1)),
}

func splat(v float32) [8]float32 { return [8]float32{v, v, v, v, v, v, v, v} }

//go:noescape
func recomputeAVX2(hstart, A, B, C, dt, du, y, abar, hs *float32, steps, n, stride int)

//go:noescape
func reverseAVX2(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 *float32, steps, n, stride int)

//go:noescape
func adjointAVX2(mu, A, C, dt, gh *float32, steps, n, stride int)

//go:noescape
func duDeltaAVX2(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 *float32, n int)

//go:noescape
func softplusAVX2(x, d *float32, n int)

//go:noescape
func sigmoidAVX2(x, s *float32, n int)

// The wrappers check every length the assembly relies on, so that a caller's mistake falls back
// to the bounds-checked Go loop instead of touching memory it does not own.

// spans reports whether x holds elements 0, stride, …, (steps−1)·stride.
func spans(x []float32, steps, stride int) bool { return stride > 0 && len(x) > (steps-1)*stride }

func scanRecomputeAVX2(hstart, A, B, C, dt, du, y, abar, hs []float32, steps, stride int) {
	N, T := len(A), steps
	if N%8 != 0 || T < 1 || len(hstart) < N || len(B) < T*N || len(C) < T*N || len(abar) < T*N || len(hs) < T*N ||
		!spans(dt, T, stride) || !spans(du, T, stride) || !spans(y, T, stride) {
		scanRecomputeGo(hstart, A, B, C, dt, du, y, abar, hs, steps, stride)
		return
	}
	recomputeAVX2(&hstart[0], &A[0], &B[0], &C[0], &dt[0], &du[0], &y[0], &abar[0], &hs[0], T, N, stride)
}

func scanReverseAVX2(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 []float32, steps, stride int) {
	N, T := len(A), steps
	if N%8 != 0 || T < 1 || len(mu) < N || len(dA) < N || len(hstart) < N || len(B) < T*N || len(C) < T*N ||
		len(abar) < T*N || len(hs) < T*N || len(db) < T*N || len(dc) < T*N ||
		!spans(dt, T, stride) || !spans(du, T, stride) || !spans(gh, T, stride) || !spans(s1, T, stride) ||
		!spans(s2, T, stride) {
		scanReverseGo(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2, steps, stride)
		return
	}
	reverseAVX2(&mu[0], &A[0], &B[0], &C[0], &abar[0], &hs[0], &hstart[0], &db[0], &dc[0], &dA[0],
		&dt[0], &du[0], &gh[0], &s1[0], &s2[0], T, N, stride)
}

func scanAdjointAVX2(mu, A, C, dt, gh, abar []float32, steps, stride int) {
	N, T := len(A), steps
	if N%8 != 0 || T < 1 || len(mu) < N || len(C) < T*N || !spans(dt, T, stride) || !spans(gh, T, stride) {
		scanAdjointGo(mu, A, C, dt, gh, abar, steps, stride)
		return
	}
	adjointAVX2(&mu[0], &A[0], &C[0], &dt[0], &gh[0], T, N, stride)
}

// softplusRowAVX2 runs the vector softplus on whole groups of eight and on the rest padded to
// eight, so that every element gets the same bits wherever it stands in the row.
func softplusRowAVX2(x, d []float32) {
	d = d[:len(x)]
	n := len(x) &^ 7
	if n > 0 {
		softplusAVX2(&x[0], &d[0], n)
	}
	if n < len(x) {
		var bx, bd [8]float32
		k := copy(bx[:], x[n:])
		softplusAVX2(&bx[0], &bd[0], 8)
		copy(x[n:], bx[:k])
		copy(d[n:], bd[:k])
	}
}

// sigmoidRowAVX2 runs the vector sigmoid as softplusRowAVX2 runs softplus.
func sigmoidRowAVX2(x, s []float32) {
	s = s[:len(x)]
	n := len(x) &^ 7
	if n > 0 {
		sigmoidAVX2(&x[0], &s[0], n)
	}
	if n < len(x) {
		var bx, bs [8]float32
		k := copy(bx[:], x[n:])
		sigmoidAVX2(&bx[0], &bs[0], 8)
		copy(s[n:], bs[:k])
	}
}

// duDeltaRowAVX2 runs the vector loop on whole groups of eight, duDeltaRowGo on the rest.
func duDeltaRowAVX2(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 []float32) {
	w := len(u)
	n := w &^ 7
	for _, x := range [...][]float32{gu, gd, sumD, sumBias, D, gh, dt, ddt, s1, s2} {
		if len(x) < w {
			n = 0
		}
	}
	if n > 0 {
		duDeltaAVX2(&gu[0], &gd[0], &sumD[0], &sumBias[0], &u[0], &D[0], &gh[0], &dt[0], &ddt[0], &s1[0], &s2[0], n)
	}
	duDeltaRowGo(gu[n:], gd[n:], sumD[n:], sumBias[n:], u[n:], D[n:], gh[n:], dt[n:], ddt[n:], s1[n:], s2[n:])
}
