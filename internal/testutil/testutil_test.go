package testutil

import (
	"math"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing the test.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

// nanKernel stands for a kernel whose output went NaN: the comparisons must fail on it.
func nanKernel(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v * math.Inf(1) * 0)
	}
	return y
}

func TestNaNNeverPasses(t *testing.T) {
	want := []float64{1, -2, 3}
	got := nanKernel(want)
	for name, e := range map[string]float64{"RelL2": RelL2(got, want), "MaxAbs": MaxAbs(got, want), "MaxRel": MaxRel(got, want)} {
		if Within(e, math.Inf(1)) {
			t.Errorf("%s of a NaN output is %v, which passes even an infinite tolerance", name, e)
		}
	}
	for name, check := range map[string]func(testing.TB){
		"Close":          func(tb testing.TB) { Close(tb, "out", got, want, 1e30) },
		"CloseAbs":       func(tb testing.TB) { CloseAbs(tb, "out", got, want, 1e30) },
		"CheckErr":       func(tb testing.TB) { CheckErr(tb, "out", math.NaN(), 1e30) },
		"Close/NaN want": func(tb testing.TB) { Close(tb, "out", want, []float64{1, math.NaN(), 3}, 1e30) },
	} {
		r := &recorder{TB: t}
		check(r)
		if !r.failed {
			t.Errorf("%s passed a NaN comparison", name)
		}
	}
}

func TestMeasures(t *testing.T) {
	got, want := []float32{1, 2, 2}, []float64{1, 2, 4}
	if e := RelL2(got, want); math.Abs(e-2/math.Sqrt(21)) > 1e-12 {
		t.Errorf("RelL2 = %v, want %v", e, 2/math.Sqrt(21))
	}
	if e := MaxAbs(got, want); e != 2 {
		t.Errorf("MaxAbs = %v, want 2", e)
	}
	if e := MaxRel(got, want); e != 0.5 {
		t.Errorf("MaxRel = %v, want 0.5", e)
	}
	if e := RelL2([]float64{3, 4}, []float64{0, 0}); e != 5 {
		t.Errorf("RelL2 against zeros = %v, want the absolute norm 5", e)
	}
	if e := RelL2([]float64{1}, []float64{1, 2}); !math.IsNaN(e) {
		t.Errorf("RelL2 of different lengths = %v, want NaN", e)
	}
	Close(t, "equal slices", want, want, 0)
}
