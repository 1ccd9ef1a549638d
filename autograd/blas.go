package autograd

import (
	"math"
	"os"
	"sync"

	"github.com/mambago/mamba/internal/parallel"

	"github.com/ebitengine/purego"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/gorgonia"
)

// UseBLAS makes gorgonia and gorgonia/tensor multiply matrices with OpenBLAS
// (libopenblas.so.0, loaded at run time through purego, no cgo) when it is
// installed, and with gonum's pure-Go BLAS otherwise. It returns which one is
// in use, "openblas" or "gonum", for the trainer to log.
//
// OpenBLAS runs single-threaded unless OPENBLAS_NUM_THREADS is set: the
// TapeMachine runs ops one after another and our fused ops spread over the
// cores themselves, and spinning OpenBLAS threads would compete with them
// (measured in go-ecosystem.md §2.1: 2 threads gave no faster a graph matmul
// on 2 cores than 1). Instead a large product is cut into fixed blocks of
// rows or columns of C (the cut depends only on the shape), which run as
// single-threaded OpenBLAS calls on up to GOMAXPROCS goroutines: every
// element of C is one call's sum over k, so the result does not depend on
// GOMAXPROCS.
func UseBLAS() string {
	b, err := openBLASOnce()
	if err != nil {
		gorgonia.Use(gonum.Implementation{})
		return "gonum"
	}
	gorgonia.Use(b)
	return "openblas"
}

var openBLASOnce = sync.OnceValues(loadOpenBLAS)

// openBLAS is gonum's BLAS with the level-2 and level-3 routines gorgonia's
// matmuls use (gemm, gemv) replaced by OpenBLAS's cblas ones.
type openBLAS struct {
	gonum.Implementation
	sgemm func(order, tA, tB, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	dgemm func(order, tA, tB, m, n, k int32, alpha float64, a *float64, lda int32, b *float64, ldb int32, beta float64, c *float64, ldc int32)
	sgemv func(order, tA, m, n int32, alpha float32, a *float32, lda int32, x *float32, incX int32, beta float32, y *float32, incY int32)
	dgemv func(order, tA, m, n int32, alpha float64, a *float64, lda int32, x *float64, incX int32, beta float64, y *float64, incY int32)
}

// CBLAS enumerations.
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

func loadOpenBLAS() (*openBLAS, error) {
	var lib uintptr
	var err error
	for _, name := range []string{"libopenblas.so.0", "libopenblas.so"} {
		if lib, err = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	b := &openBLAS{}
	for name, fn := range map[string]any{"cblas_sgemm": &b.sgemm, "cblas_dgemm": &b.dgemm, "cblas_sgemv": &b.sgemv, "cblas_dgemv": &b.dgemv} {
		sym, err := purego.Dlsym(lib, name)
		if err != nil {
			return nil, err
		}
		purego.RegisterFunc(fn, sym)
	}
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" {
		if sym, err := purego.Dlsym(lib, "openblas_set_num_threads"); err == nil {
			var setThreads func(int32)
			purego.RegisterFunc(&setThreads, sym)
			setThreads(1)
		}
	}
	return b, nil
}

func cblasOp(t blas.Transpose) int32 {
	if t == blas.NoTrans {
		return cblasNoTrans
	}
	return cblasTrans
}

// fits reports whether an r×c row-major matrix with leading dimension ld fits
// in n elements, as BLAS requires (ld ≥ max(1, c)).
func fits(r, c, ld, n int) bool {
	return ld >= max(1, c) && (r == 0 || c == 0 || n >= ld*(r-1)+c)
}

// gemmOK reports whether a gemm call is one OpenBLAS should do: well formed
// (gonum, which gets every other call, panics on malformed ones as BLAS
// should), non-empty, and with sizes that fit cblas's 32-bit integers.
func gemmOK(tA, tB blas.Transpose, m, n, k, lda, la, ldb, lb, ldc, lc int) bool {
	valid := func(t blas.Transpose) bool { return t == blas.NoTrans || t == blas.Trans || t == blas.ConjTrans }
	if !valid(tA) || !valid(tB) || m <= 0 || n <= 0 || k <= 0 || max(m, n, k, lda, ldb, ldc, la, lb, lc) > math.MaxInt32 {
		return false
	}
	ar, ac := m, k
	if tA != blas.NoTrans {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB != blas.NoTrans {
		br, bc = n, k
	}
	return fits(ar, ac, lda, la) && fits(br, bc, ldb, lb) && fits(m, n, ldc, lc)
}

// gemvOK is gemmOK for gemv with positive increments.
func gemvOK(tA blas.Transpose, m, n, lda, la, lx, incX, ly, incY int) bool {
	if (tA != blas.NoTrans && tA != blas.Trans && tA != blas.ConjTrans) || m <= 0 || n <= 0 || incX <= 0 || incY <= 0 ||
		max(m, n, lda, la, incX, incY) > math.MaxInt32 {
		return false
	}
	nx, ny := n, m
	if tA != blas.NoTrans {
		nx, ny = m, n
	}
	return fits(m, n, lda, la) && lx >= 1+(nx-1)*incX && ly >= 1+(ny-1)*incY
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C (row-major).
func (b *openBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	if !gemmOK(tA, tB, m, n, k, lda, len(a), ldb, len(bm), ldc, len(c)) {
		b.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
		return
	}
	gemmBlocks(tA, tB, m, n, k, lda, ldb, ldc, func(m, n, ao, bo, co int) {
		b.sgemm(cblasRowMajor, cblasOp(tA), cblasOp(tB), int32(m), int32(n), int32(k), alpha, &a[ao], int32(lda), &bm[bo], int32(ldb), beta, &c[co], int32(ldc))
	})
}

// Dgemm computes C = alpha·op(A)·op(B) + beta·C (row-major).
func (b *openBLAS) Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, bm []float64, ldb int, beta float64, c []float64, ldc int) {
	if !gemmOK(tA, tB, m, n, k, lda, len(a), ldb, len(bm), ldc, len(c)) {
		b.Implementation.Dgemm(tA, tB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
		return
	}
	gemmBlocks(tA, tB, m, n, k, lda, ldb, ldc, func(m, n, ao, bo, co int) {
		b.dgemm(cblasRowMajor, cblasOp(tA), cblasOp(tB), int32(m), int32(n), int32(k), alpha, &a[ao], int32(lda), &bm[bo], int32(ldb), beta, &c[co], int32(ldc))
	})
}

// Products of at least gemmSplit multiply-adds are cut into gemmParts
// blocks of rows (or columns) of C, each a multiple of 16 and at least
// gemmMinBlock: enough blocks for two to four cores, few enough that
// OpenBLAS packs the shared operand only a few times (each block repacks
// it: 8 blocks cost 10-25% more CPU than one call, 4 blocks about half that).
const (
	gemmSplit    = 1 << 21
	gemmParts    = 4
	gemmMinBlock = 64
)

// gemmBlocks cuts the m×n product C = op(A)·op(B) into blocks of rows of C,
// or columns when n > m, and calls f(rows, cols, offset in a, offset in b,
// offset in c) for each, on up to GOMAXPROCS goroutines. The blocks depend
// only on the shape. Small products are one call.
func gemmBlocks(tA, tB blas.Transpose, m, n, k, lda, ldb, ldc int, f func(m, n, ao, bo, co int)) {
	if m*n*k < gemmSplit {
		f(m, n, 0, 0, 0)
		return
	}
	block := func(size int) int { return max(gemmMinBlock, (size+16*gemmParts-1)/(16*gemmParts)*16) }
	if m >= n {
		parallel.For(m, block(m), func(_, i0, i1 int) {
			ao := i0 * lda // row i0 of op(A)
			if tA != blas.NoTrans {
				ao = i0
			}
			f(i1-i0, n, ao, 0, i0*ldc)
		})
		return
	}
	parallel.For(n, block(n), func(_, j0, j1 int) {
		bo := j0 // column j0 of op(B)
		if tB != blas.NoTrans {
			bo = j0 * ldb
		}
		f(m, j1-j0, 0, bo, j0)
	})
}
