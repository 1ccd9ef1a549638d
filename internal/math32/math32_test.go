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
	testutil.CheckErr(t, "Exp", worst, 2.5e-7)
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
	testutil.CheckErr(t, "Softplus", worstSP, 3e-7)
	testutil.CheckErr(t, "Softplus derivative", worstD, 3e-7)
	testutil.CheckErr(t, "Sigmoid", worstS, 3e-7)
}
