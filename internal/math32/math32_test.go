package math32

import (
	"math"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// TestScalar: Exp, Softplus and Sigmoid against float64 math.
func TestScalar(t *testing.T) {
	worst := 0.0
	for x := -87.3; x < 88.7; x += 0.000731 {
		xf := float32(x)
		want := math.Exp(float64(xf))
		e := math.Abs(float64(Exp(xf))-want) / want
		worst = max(worst, e)
	}
	t.Logf("Exp: worst relative error %.3g", worst)
	if !testutil.Within(worst, 2.5e-7) {
		t.Errorf("Exp: relative error %.3g", worst)
	}
	for x, want := range map[float32]float32{-88: 0, -1000: 0, float32(math.Inf(-1)): 0, 0: 1, 89: float32(math.Inf(1)),
		float32(math.Inf(1)): float32(math.Inf(1))} {
		if got := Exp(x); got != want {
			t.Errorf("Exp(%v) = %v, want %v", x, got, want)
		}
	}
	if v := Exp(float32(math.NaN())); v == v {
		t.Errorf("Exp(NaN) = %v", v)
	}
	worstSP, worstD, worstS := 0.0, 0.0, 0.0
	for x := -60.0; x < 30; x += 0.00123 {
		xf := float32(x)
		sp, dsp := Softplus(xf)
		x64 := float64(xf)
		wantSP, wantD := math.Log1p(math.Exp(x64)), 1/(1+math.Exp(-x64))
		if x64 > SoftplusThreshold {
			wantSP, wantD = x64, 1
		}
		worstSP = max(worstSP, math.Abs(float64(sp)-wantSP)/wantSP)
		worstD = max(worstD, math.Abs(float64(dsp)-wantD)/wantD)
		worstS = max(worstS, math.Abs(float64(Sigmoid(xf))-1/(1+math.Exp(-x64)))*(1+math.Exp(-x64)))
	}
	t.Logf("Softplus %.3g, its derivative %.3g, Sigmoid %.3g", worstSP, worstD, worstS)
	if !testutil.Within(worstSP, 3e-7) || !testutil.Within(worstD, 3e-7) || !testutil.Within(worstS, 3e-7) {
		t.Errorf("relative errors: softplus %.3g, derivative %.3g, sigmoid %.3g", worstSP, worstD, worstS)
	}
}

// TestExpAffine: e^(a·x+b) over a row, in place too, against float64 math.Exp.
func TestExpAffine(t *testing.T) {
	src := make([]float32, 2001)
	for i := range src {
		src[i] = float32(i-1000) * 0.04 // [-40, 40]
	}
	dst := make([]float32, len(src))
	for _, ab := range [][2]float32{{1, 0}, {-1, 0}, {2, -3.5}} {
		ExpAffine(dst, src, ab[0], ab[1])
		for i, v := range src {
			want := math.Exp(float64(ab[0]*v + ab[1]))
			if want < 0x1p-126 {
				continue // flushed to zero by design
			}
			if rel := math.Abs(float64(dst[i])-want) / want; !testutil.Within(rel, 2.5e-7) {
				t.Fatalf("a=%v b=%v x=%v: got %v want %v (rel %.2g)", ab[0], ab[1], v, dst[i], want, rel)
			}
		}
	}
	in := append([]float32(nil), src...)
	ExpAffine(in, in, 1, 0)
	ExpAffine(dst, src, 1, 0)
	for i := range in {
		if in[i] != dst[i] {
			t.Fatalf("in place differs at %d", i)
		}
	}
	nan := []float32{float32(math.NaN())}
	if ExpAffine(nan, nan, 1, 0); nan[0] == nan[0] {
		t.Fatal("NaN not kept")
	}
}
