package autograd

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func openBLASOrSkip(t *testing.T) *openBLAS {
	b, err := openBLASOnce()
	if err != nil {
		t.Skipf("OpenBLAS is not installed (%v): install libopenblas0-pthread to run this test", err)
	}
	return b
}

// TestOpenBLASMatchesGonum compares gemm and gemv with gonum's on random
// shapes, both transposes and padded leading dimensions.
func TestOpenBLASMatchesGonum(t *testing.T) {
	b := openBLASOrSkip(t)
	rng := rand.New(rand.NewPCG(21, 22))
	var g gonum.Implementation
	for _, s := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {300, 90, 80}, {90, 300, 80}} {
		m, n, k := s[0], s[1], s[2]
		for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
				ar, ac := m, k
				if tA == blas.Trans {
					ar, ac = k, m
				}
				br, bc := k, n
				if tB == blas.Trans {
					br, bc = n, k
				}
				a, bm, c := randn(rng, ar*(ac+2), 1), randn(rng, br*(bc+1), 1), randn(rng, m*(n+3), 1)
				want := append([]float64(nil), c...)
				g.Dgemm(tA, tB, m, n, k, 0.7, a, ac+2, bm, bc+1, -0.3, want, n+3)
				got := append([]float64(nil), c...)
				b.Dgemm(tA, tB, m, n, k, 0.7, a, ac+2, bm, bc+1, -0.3, got, n+3)
				if e := maxRelErr(got, want); e > 1e-13 {
					t.Errorf("Dgemm %c%c %v: max relative error %.3g", tA, tB, s, e)
				}
				a32, b32 := convert[float32](a), convert[float32](bm)
				want32, got32 := convert[float32](c), convert[float32](c)
				g.Sgemm(tA, tB, m, n, k, 0.7, a32, ac+2, b32, bc+1, -0.3, want32, n+3)
				b.Sgemm(tA, tB, m, n, k, 0.7, a32, ac+2, b32, bc+1, -0.3, got32, n+3)
				if e := maxRelErr(convert[float64](got32), convert[float64](want32)); e > 1e-5 {
					t.Errorf("Sgemm %c%c %v: max relative error %.3g", tA, tB, s, e)
				}
			}
			nx, ny := n, m
			if tA == blas.Trans {
				nx, ny = m, n
			}
			a, x, y := randn(rng, m*(n+1), 1), randn(rng, 2*nx, 1), randn(rng, 3*ny, 1)
			want, got := append([]float64(nil), y...), append([]float64(nil), y...)
			g.Dgemv(tA, m, n, 1.5, a, n+1, x, 2, 0.5, want, 3)
			b.Dgemv(tA, m, n, 1.5, a, n+1, x, 2, 0.5, got, 3)
			if e := maxRelErr(got, want); e > 1e-13 {
				t.Errorf("Dgemv %c %v: max relative error %.3g", tA, s, e)
			}
			want32, got32 := convert[float32](y), convert[float32](y)
			g.Sgemv(tA, m, n, 1.5, convert[float32](a), n+1, convert[float32](x), 2, 0.5, want32, 3)
			b.Sgemv(tA, m, n, 1.5, convert[float32](a), n+1, convert[float32](x), 2, 0.5, got32, 3)
			if e := maxRelErr(convert[float64](got32), convert[float64](want32)); e > 1e-5 {
				t.Errorf("Sgemv %c %v: max relative error %.3g", tA, s, e)
			}
		}
	}
}

// TestUseBLAS runs a graph matmul with the BLAS UseBLAS picks and compares
// it with gonum's result.
func TestUseBLAS(t *testing.T) {
	t.Cleanup(func() { gorgonia.Use(gonum.Implementation{}) })
	rng := rand.New(rand.NewPCG(23, 24))
	av, bv := randn(rng, 40*30, 1), randn(rng, 30*20, 1)
	mul := func() []float64 {
		g := gorgonia.NewGraph()
		a := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(40, 30), gorgonia.WithValue(toValue(tensor.Float32, []int{40, 30}, av)))
		b := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(30, 20), gorgonia.WithValue(toValue(tensor.Float32, []int{30, 20}, bv)))
		c := gorgonia.Must(gorgonia.Mul(a, b))
		m := gorgonia.NewTapeMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return fromValue(c.Value())
	}
	want := mul()
	which := UseBLAS()
	_, err := openBLASOnce()
	if (err == nil) != (which == "openblas") || (which != "openblas" && which != "gonum") {
		t.Fatalf("UseBLAS() = %q while loading OpenBLAS gave error %v", which, err)
	}
	if e := maxRelErr(mul(), want); e > 1e-5 {
		t.Errorf("graph matmul with %s: max relative error %.3g against gonum", which, e)
	}
	t.Logf("UseBLAS() = %q", which)
}

// BenchmarkSgemm multiplies (4096, 256)·(256, 1024), the in_proj matmul of the
// benchmark model, with gonum, with OpenBLAS in one call (1 thread unless
// OPENBLAS_NUM_THREADS is set) and with OpenBLAS cut into blocks on up to
// GOMAXPROCS goroutines (what openBLAS.Sgemm does).
func BenchmarkSgemm(b *testing.B) {
	const m, k, n = 4096, 256, 1024
	rng := rand.New(rand.NewPCG(25, 26))
	a, bm, c := convert[float32](randn(rng, m*k, 1)), convert[float32](randn(rng, k*n, 1)), make([]float32, m*n)
	bench := func(name string, impl blas.Float32) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				impl.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bm, n, 0, c, n)
			}
			b.ReportMetric(2*m*n*k*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "GFLOP/s")
		})
	}
	bench("gonum", gonum.Implementation{})
	if ob, err := openBLASOnce(); err == nil {
		bench("openblas-1call", whole{ob})
		bench("openblas-blocks", ob)
	}
}

// whole is OpenBLAS's Sgemm as a single call.
type whole struct{ *openBLAS }

func (w whole) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	w.sgemm(cblasRowMajor, cblasOp(tA), cblasOp(tB), int32(m), int32(n), int32(k), alpha, &a[0], int32(lda), &b[0], int32(ldb), beta, &c[0], int32(ldc))
}

// TestOpenBLASBlocks: a product large enough to be cut into blocks is
// bitwise the same with GOMAXPROCS 1 and 3, cut by rows and by columns.
func TestOpenBLASBlocks(t *testing.T) {
	b := openBLASOrSkip(t)
	rng := rand.New(rand.NewPCG(27, 28))
	for _, s := range [][3]int{{700, 60, 70}, {60, 700, 70}} {
		m, n, k := s[0], s[1], s[2]
		a, bm := convert[float32](randn(rng, k*m, 1)), convert[float32](randn(rng, n*k, 1))
		var got [2][]float32
		for i, procs := range []int{1, 3} {
			old := runtime.GOMAXPROCS(procs)
			got[i] = make([]float32, m*n)
			b.Sgemm(blas.Trans, blas.Trans, m, n, k, 1, a, m, bm, k, 0, got[i], n)
			runtime.GOMAXPROCS(old)
		}
		if !slices.Equal(got[0], got[1]) {
			t.Errorf("Sgemm %v: GOMAXPROCS 1 and 3 differ", s)
		}
	}
}
