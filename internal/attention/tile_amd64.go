//go:build amd64 && !purego

package attention

import (
	"math"

	"github.com/mambago/mamba/internal/math32"
	"golang.org/x/sys/cpu"
)

// AVX2/FMA versions of the tile loops (tile_amd64.s), and AVX-512 products, chosen at start-up
// when the CPU has them; the purego build tag keeps the pure-Go loops. The products sum in the
// pure-Go loops' order with fused multiply-adds, so results differ from them in the last bits
// (and the AVX-512 products give the AVX2 ones' bits); one path serves every item of a run, so
// results stay bitwise independent of the worker count.

var (
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F
)

// asmPaths names the assembly paths this CPU runs, fastest last.
func asmPaths() []string {
	switch {
	case hasAVX512:
		return []string{"avx2", "avx512"}
	case hasAVX2:
		return []string{"avx2"}
	}
	return nil
}

//go:generate go run gen_tile.go

func init() { useAsm(bestPath()) }

// useAsm selects the loops of a path: "go", "avx2" or "avx512" (tests run each).
func useAsm(path string) {
	mulAdd, dots, expAffine, expBias = mulAddGo, dotsGo, expAffineGo, expBiasGo
	switch path {
	case "avx2":
		mulAdd, dots, expAffine, expBias = mulAddAVX2, dotsAVX2Rows, expAffineAVX2Row, expBiasAVX2Row
	case "avx512":
		mulAdd, dots, expAffine, expBias = mulAddAVX512, dotsAVX2Rows, expAffineAVX2Row, expBiasAVX2Row
	}
}

// The vector exp reduces x = k·ln2 + r with |r| ≤ ln2/2 and evaluates e^r by a polynomial, as the
// scan package's does (math32.Exp's table of 2^(j/64) would need a gather); its constants come
// from math32.
const (
	// ln2Hi has its 9 low mantissa bits zero, so k·ln2Hi is exact for |k| ≤ 2^8 and x − k·ln2Hi
	// is exact (Cody–Waite range reduction); ln2Lo = ln 2 − ln2Hi.
	ln2Hi = 0.693145751953125
	ln2Lo = 1.428606820309417e-06
	// Coefficients of exp(r) ≈ 1 + r·(c1 + r·(c2 + … + r·c6)) on |r| ≤ ln2/2 (Chebyshev
	// interpolation, relative error 2.5e-9, c1 rounded to 1): about 1 ulp in float32.
	expC1 = 1
	expC2 = 0.5000000047117784
	expC3 = 0.16666415514653618
	expC4 = 0.04166635289669687
	expC5 = 0.008375126398132253
	expC6 = 0.0013941108438804987
)

// The range-reduction constants of math32.Exp. This vector exp duplicates math32's and is to be
// replaced by math32's row functions.
const (
	log2E          = 1.44269504088896341
	roundMagic     = 12582912
	roundMagicBits = 0x4b400000
)

// expConsts holds the constants of the vector exp broadcast to eight lanes, in the order the
// assembly reads them.
var expConsts = [...][8]float32{
	splat(log2E), splat(roundMagic), splat(-ln2Hi), splat(-ln2Lo),
	splat(expC6), splat(expC5), splat(expC4), splat(expC3), splat(expC2), splat(expC1), splat(1),
	splat(math32.ExpLo), splat(math32.ExpHi), splat(math.Float32frombits(roundMagicBits - 127)),
}

func splat(v float32) [8]float32 { return [8]float32{v, v, v, v, v, v, v, v} }

//go:noescape
func expAffineAVX2(dst, src *float32, n int, a, b float32)

// expAffineAVX2Row is expAffineGo with whole groups of eight in assembly.
func expAffineAVX2Row(dst, src []float32, a, b float32) {
	n := len(src) &^ 7
	if len(dst) < len(src) {
		n = 0
	}
	if n > 0 {
		expAffineAVX2(&dst[0], &src[0], n, a, b)
	}
	expAffineGo(dst[n:], src[n:], a, b)
}

//go:noescape
func kern4x16(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)

//go:noescape
func kern4x8(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)

//go:noescape
func kern1x16(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)

//go:noescape
func kern1x8(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)

//go:noescape
func kern4x32(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)

//go:noescape
func kern1x32(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)

//go:noescape
func dotsAVX2(s, q, k *float32, ldk, n, d int)

// mulAddAVX2 is mulAddGo with blocks of 4 rows × 16 or 8 columns in assembly; the rows left over
// run one at a time, the columns left over (n mod 8) in Go.
func mulAddAVX2(c []float32, ldc int, a []float32, ars, aks int, b []float32, ldb int, m, n, k int, acc bool) {
	mulAddBlocks(c, ldc, a, ars, aks, b, ldb, m, n, k, acc, false)
}

// mulAddAVX512 is mulAddAVX2 with blocks of 32 columns first.
func mulAddAVX512(c []float32, ldc int, a []float32, ars, aks int, b []float32, ldb int, m, n, k int, acc bool) {
	mulAddBlocks(c, ldc, a, ars, aks, b, ldb, m, n, k, acc, true)
}

// mulAddBlocks runs the products block by block. It checks every extent the assembly relies on
// and hands a call it cannot prove in bounds to the bounds-checked Go loop.
func mulAddBlocks(c []float32, ldc int, a []float32, ars, aks int, b []float32, ldb int, m, n, k int, acc, wide bool) {
	if m < 1 || n < 8 || k < 1 || ldc < n || ldb < n || ars < 0 || aks < 0 ||
		(m-1)*ldc+n > len(c) || (m-1)*ars+(k-1)*aks >= len(a) || (k-1)*ldb+n > len(b) {
		mulAddGo(c, ldc, a, ars, aks, b, ldb, m, n, k, acc)
		return
	}
	j := 0
	for _, blk := range [...]struct {
		w         int
		four, one func(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)
	}{{32, kern4x32, kern1x32}, {16, kern4x16, kern1x16}, {8, kern4x8, kern1x8}} {
		if blk.w == 32 && !wide {
			continue
		}
		for ; j+blk.w <= n; j += blk.w {
			r := 0
			for ; r+4 <= m; r += 4 {
				blk.four(&c[r*ldc+j], &a[r*ars], &b[j], ldc, ars, aks, ldb, k, acc)
			}
			for ; r < m; r++ {
				blk.one(&c[r*ldc+j], &a[r*ars], &b[j], ldc, ars, aks, ldb, k, acc)
			}
		}
	}
	if j < n {
		mulAddGo(c[j:], ldc, a, ars, aks, b[j:], ldb, m, n-j, k, acc)
	}
}

// dotsAVX2Rows is dotsGo in assembly when the rows are a multiple of 8 long: eight partial sums per
// dot product, folded in a fixed order.
func dotsAVX2Rows(s, q, k []float32, ldk, n int) {
	d := len(q)
	if d%8 != 0 || d == 0 || n < 1 || ldk < d || len(s) < n || (n-1)*ldk+d > len(k) {
		dotsGo(s, q, k, ldk, n)
		return
	}
	dotsAVX2(&s[0], &q[0], &k[0], ldk, n, d)
}

//go:noescape
func expBiasAVX2(dst, src, bias *float32, n int, a float32)

// expBiasAVX2Row is expBiasGo with whole groups of eight in assembly.
func expBiasAVX2Row(dst, src []float32, a float32, bias []float32) {
	n := len(src) &^ 7
	if len(dst) < len(src) || len(bias) < len(src) {
		n = 0
	}
	if n > 0 {
		expBiasAVX2(&dst[0], &src[0], &bias[0], n, a)
	}
	expBiasGo(dst[n:], src[n:], a, bias[n:])
}
