package autograd

import (
	"math"
	"testing"
)

func TestExpAffine(t *testing.T) {
	const n = 400001
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(-103.9 + float64(i)*(88.7+103.9)/(n-1))
	}
	got := make([]float32, n)
	expAffine(got, x, 1, 0)
	worst := 0.0
	for i, xi := range x {
		want := math.Exp(float64(xi))
		if want < 0x1p-126 { // subnormal results: within one subnormal step
			if math.Abs(float64(got[i])-want) > 0x1p-149 {
				t.Fatalf("e^%g = %g, want %g", xi, got[i], want)
			}
			continue
		}
		worst = max(worst, math.Abs(float64(got[i])-want)/want)
	}
	t.Logf("worst relative error %.2g", worst)
	if worst > 2e-7 {
		t.Errorf("worst relative error %.3g, want ≤ 2e-7", worst)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	in := []float32{0, -89, 105, nan, 2}
	out := make([]float32, len(in))
	expAffine(out, in, -1, 0) // e^(−x)
	if out[0] != 1 || out[1] != inf || out[2] != 0 || out[3] == out[3] || math.Abs(float64(out[4])-math.Exp(-2)) > 2e-7*math.Exp(-2) {
		t.Errorf("e^(−x) of %v = %v", in, out)
	}
	expAffine(in, in, 1, -2) // in place, shifted
	if in[4] != 1 {
		t.Errorf("e^(2−2) in place = %v, want 1", in[4])
	}
}
