package math32

import (
	"fmt"
	"math"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// onPaths runs f on every path this build and CPU have.
func onPaths(t *testing.T, f func(t *testing.T)) {
	defer func() {
		if err := SetPath(available[len(available)-1]); err != nil {
			t.Fatal(err)
		}
	}()
	for _, p := range Paths() {
		if err := SetPath(p); err != nil {
			t.Fatal(err)
		}
		t.Run(p.String(), f)
	}
}

// grid returns n points spread over [lo, hi).
func grid(n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*float64(i)/float64(n))
	}
	return x
}

// rowFunc is one of the row functions with its float64 definition: outputs y and d (nil when it
// has one), and how an error is measured (relative, or absolute where the value crosses 0).
type rowFunc struct {
	name string
	run  func(y, d, x []float32)
	want func(x float64) (y, d float64)
	two  bool
	abs  bool
}

func sigma(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// apply runs f on x into new rows y and d.
func (f rowFunc) apply(x []float32) (y, d []float32) {
	y, d = make([]float32, len(x)), make([]float32, len(x))
	f.run(y, d, x)
	return y, d
}

var rowFuncs = []rowFunc{
	{"Softplus", SoftplusRow, func(x float64) (float64, float64) {
		if x > SoftplusThreshold {
			return x, 1
		}
		return math.Log1p(math.Exp(x)), sigma(x)
	}, true, false},
	{"Sigmoid", func(y, _, x []float32) { SigmoidRow(y, x) }, func(x float64) (float64, float64) { return sigma(x), 0 }, false, false},
	{"SiLU", func(y, _, x []float32) { SiLURow(y, x) }, func(x float64) (float64, float64) { return x * sigma(x), 0 }, false, false},
	{"SiLUGrad", SiLUGradRow, func(x float64) (float64, float64) {
		s := sigma(x)
		return x * s, s * (1 + x*(1-s))
	}, true, true},
	{"ExpAffine", func(y, _, x []float32) { ExpAffine(y, x, -1.4, 0.25) }, func(x float64) (float64, float64) {
		return math.Exp(float64(float32(-1.4*float32(x)) + 0.25)), 0
	}, false, false},
}

// TestRows: every row function on every path against float64 math over [-60, 30) (ExpAffine's
// argument over (-41.75, 84.25]); relative error ≤ 3e-7 (SiLU's derivative, which crosses 0,
// absolute ≤ 3e-7).
func TestRows(t *testing.T) {
	x := grid(100003, -60, 30)
	onPaths(t, func(t *testing.T) {
		for _, f := range rowFuncs {
			y, d := f.apply(x)
			worstY, worstD := 0.0, 0.0
			for i, v := range x {
				wy, wd := f.want(float64(v))
				if f.name == "ExpAffine" && wy < 0x1p-126 {
					if y[i] != 0 {
						t.Fatalf("ExpAffine at %v: %v, want 0 (subnormal results are flushed)", v, y[i])
					}
					continue
				}
				ey := math.Abs(float64(y[i])-wy) / math.Max(math.Abs(wy), 1e-30)
				if f.abs && math.Abs(wy) < 1 {
					ey = math.Abs(float64(y[i]) - wy)
				}
				worstY = max(worstY, ey)
				if f.two {
					ed := math.Abs(float64(d[i])-wd) / math.Abs(wd)
					if f.abs {
						ed = math.Abs(float64(d[i]) - wd)
					}
					worstD = max(worstD, ed)
				}
				if ey != ey {
					worstY = ey
					break
				}
			}
			t.Logf("%-9s worst error %.3g, of its derivative %.3g", f.name, worstY, worstD)
			testutil.CheckErr(t, f.name, worstY, 3e-7)
			testutil.CheckErr(t, f.name+" derivative", worstD, 3e-7)
		}
	})
}

// TestRowsInPlace: y may be x.
func TestRowsInPlace(t *testing.T) {
	x := grid(37, -5, 5)
	onPaths(t, func(t *testing.T) {
		for _, f := range rowFuncs {
			y, d := f.apply(x)
			z := append([]float32(nil), x...)
			f.run(z, d, z)
			testutil.CloseAbs(t, f.name+" in place", z, y, 0)
		}
	})
}

// TestPositionIndependent: an element's result does not depend on where it stands in the row
// (vector body or padded tail), on every path; and both vector widths give the same bits.
func TestPositionIndependent(t *testing.T) {
	x := grid(57, -30, 25)
	results := map[Path][][2][]float32{}
	onPaths(t, func(t *testing.T) {
		p := Current()
		for _, f := range rowFuncs {
			y, d := f.apply(x)
			results[p] = append(results[p], [2][]float32{y, d})
			for k := 1; k < 18; k++ {
				ys, ds := f.apply(x[k:])
				for i := range ys {
					if ys[i] != y[k+i] || ds[i] != d[k+i] {
						t.Fatalf("%s: element %d gives (%v, %v) at %d and (%v, %v) at %d", f.name, k+i, y[k+i], d[k+i],
							k+i, ys[i], ds[i], i)
					}
				}
			}
		}
	})
	if a, b := results[AVX2], results[AVX512]; a != nil && b != nil {
		for i, f := range rowFuncs {
			testutil.CloseAbs(t, f.name+": AVX-512 vs AVX2", b[i][0], a[i][0], 0)
			testutil.CloseAbs(t, f.name+" derivative: AVX-512 vs AVX2", b[i][1], a[i][1], 0)
		}
	} else {
		t.Logf("paths %v: no pair of vector widths to compare bit for bit", Paths())
	}
}

// TestRowsNaN: NaN stays NaN through every row function, in a whole vector and in the tail.
func TestRowsNaN(t *testing.T) {
	nan := float32(math.NaN())
	onPaths(t, func(t *testing.T) {
		for _, f := range rowFuncs {
			x := make([]float32, 19)
			x[3], x[18] = nan, nan
			y, d := f.apply(x)
			for _, i := range []int{3, 18} {
				if y[i] == y[i] || f.two && d[i] == d[i] {
					t.Errorf("%s(NaN) at %d = %v, %v", f.name, i, y[i], d[i])
				}
			}
		}
	})
}

// TestExpScaledRows: rows of one scaled row (stride 0) and rows of their own, n a multiple of
// the vector widths and not, against float64 math.Exp; one row element by element equals
// ExpAffine with b = 0 on the Go path.
func TestExpScaledRows(t *testing.T) {
	onPaths(t, func(t *testing.T) {
		for _, n := range []int{5, 8, 16, 48} {
			for _, aStride := range []int{0, n} {
				const rows, xStride = 7, 3
				a := grid(rows*n+1, -12, 0.5)
				x := grid(rows*xStride, 0.01, 7)
				dst := make([]float32, rows*n)
				ExpScaledRows(dst, n, x, xStride, a, aStride)
				want := make([]float64, len(dst))
				for r := range rows {
					for j := range n {
						want[r*n+j] = math.Exp(float64(x[r*xStride] * a[r*aStride+j]))
					}
				}
				testutil.CheckErr(t, fmt.Sprintf("n %d aStride %d", n, aStride), testutil.MaxRel(dst, want), 2.5e-7)
				e := 0.0
				for i, w := range want {
					e = max(e, math.Abs(float64(dst[i])-w)/w)
				}
				testutil.CheckErr(t, fmt.Sprintf("n %d aStride %d, elementwise", n, aStride), e, 2.5e-7)
			}
		}
	})
}

// TestRowsNoAllocations: the row functions allocate nothing, tails included.
func TestRowsNoAllocations(t *testing.T) {
	x := grid(21, -3, 3)
	y, d := make([]float32, len(x)), make([]float32, len(x))
	onPaths(t, func(t *testing.T) {
		if a := testing.AllocsPerRun(10, func() {
			SoftplusRow(y, d, x)
			SigmoidRow(y, x)
			SiLUGradRow(y, d, x)
			ExpAffine(y, x, 1, 0)
			ExpScaledRows(y[:16], 8, x, 1, x, 0)
		}); a != 0 {
			t.Errorf("%v allocations", a)
		}
	})
}

// TestSetPath: an unknown path is refused and leaves the current one.
func TestSetPath(t *testing.T) {
	before := Current()
	if err := SetPath(Path(7)); err == nil {
		t.Error("SetPath(7) accepted")
	}
	if Current() != before {
		t.Errorf("path changed to %v", Current())
	}
	if got := Paths(); got[0] != Go {
		t.Errorf("Paths() = %v, want Go first", got)
	}
}

// TestChoose: MAMBA_VECTOR wins when the CPU runs the path it names and is an error
// otherwise; without it, AMD family 25 (Zen 3/4) takes AVX2 over AVX-512 and every other
// CPU the best path it has.
func TestChoose(t *testing.T) {
	all := []Path{Go, AVX2, AVX512}
	for _, c := range []struct {
		avail  []Path
		env    string
		vendor string
		family int
		want   Path
		err    bool
	}{
		{all, "", "GenuineIntel", 6, AVX512, false},
		{all, "", "AuthenticAMD", 25, AVX2, false},
		{all, "", "AuthenticAMD", 26, AVX512, false},
		{[]Path{Go, AVX2}, "", "AuthenticAMD", 25, AVX2, false},
		{all, "avx512", "AuthenticAMD", 25, AVX512, false},
		{all, "go", "GenuineIntel", 6, Go, false},
		{[]Path{Go}, "avx2", "GenuineIntel", 6, Go, true},
		{all, "AVX2", "GenuineIntel", 6, AVX512, true},
	} {
		p, why, err := choose(c.avail, c.env, c.vendor, c.family)
		if p != c.want || (err != nil) != c.err || why == "" {
			t.Errorf("choose(%v, %q, %s %d) = %v, %q, %v; want %v, error %t", c.avail, c.env, c.vendor, c.family, p, why, err, c.want, c.err)
		}
	}
}
