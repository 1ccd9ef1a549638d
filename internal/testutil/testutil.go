// Package testutil holds the comparisons every test of the project uses, so that each
// tolerance check is written once and fails on NaN:
//
//	RelL2(got, want)  = ‖got − want‖₂ / ‖want‖₂    (‖got‖₂ when want is all zeros)
//	MaxRel(got, want) = max_i |got_i − want_i| / max(max_j |want_j|, tiny)
//	MaxAbs(got, want) = max_i |got_i − want_i|
//
// in float64 whatever the element types. Any NaN in either slice makes every measure NaN,
// and Within(err, tol), written !(err > tol)'s safe form err ≤ tol, is false for NaN: a
// kernel that produces NaN can never pass.
package testutil

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Float is an element type the helpers compare.
type Float interface{ ~float32 | ~float64 }

// Within reports err ≤ tol; NaN is never within any tolerance.
func Within(err, tol float64) bool { return err <= tol }

// RelL2 returns ‖got − want‖₂ / ‖want‖₂ (the absolute norm ‖got − want‖₂ when want is
// zero), NaN when a value is NaN or the lengths differ.
func RelL2[G, W Float](got []G, want []W) float64 {
	if len(got) != len(want) {
		return math.NaN()
	}
	var d, n float64
	for i, w := range want {
		e := float64(got[i]) - float64(w)
		d += e * e
		n += float64(w) * float64(w)
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// MaxAbs returns max_i |got_i − want_i|, NaN when a value is NaN or the lengths differ.
func MaxAbs[G, W Float](got []G, want []W) float64 {
	if len(got) != len(want) {
		return math.NaN()
	}
	m := 0.0
	for i, w := range want {
		e := math.Abs(float64(got[i]) - float64(w))
		if e != e {
			return math.NaN()
		}
		m = max(m, e)
	}
	return m
}

// MaxRel returns max_i |got_i − want_i| divided by the largest |want_j| (1e-300 at least),
// NaN when a value is NaN or the lengths differ.
func MaxRel[G, W Float](got []G, want []W) float64 {
	scale := 1e-300
	for _, w := range want {
		if w != w {
			return math.NaN()
		}
		scale = max(scale, math.Abs(float64(w)))
	}
	return MaxAbs(got, want) / scale
}

// Close fails t, naming what, unless RelL2(got, want) ≤ tol.
func Close[G, W Float](t testing.TB, what string, got []G, want []W, tol float64) {
	t.Helper()
	if e := RelL2(got, want); !Within(e, tol) {
		t.Errorf("%s: relative L2 error %.3g, want ≤ %.3g", what, e, tol)
	}
}

// CloseAbs fails t, naming what, unless MaxAbs(got, want) ≤ tol.
func CloseAbs[G, W Float](t testing.TB, what string, got []G, want []W, tol float64) {
	t.Helper()
	if e := MaxAbs(got, want); !Within(e, tol) {
		t.Errorf("%s: max absolute error %.3g, want ≤ %.3g", what, e, tol)
	}
}

// CheckErr fails t, naming what, unless err ≤ tol (an error measure computed by the test).
func CheckErr(t testing.TB, what string, err, tol float64) {
	t.Helper()
	if !Within(err, tol) {
		t.Errorf("%s: error %.3g, want ≤ %.3g", what, err, tol)
	}
}

// Normals returns n draws of N(0, scale²) from r.
func Normals(r *rand.Rand, n int, scale float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64() * scale
	}
	return x
}

// Convert returns x converted element by element to To.
func Convert[To, From Float](x []From) []To {
	y := make([]To, len(x))
	for i, v := range x {
		y[i] = To(v)
	}
	return y
}
