//go:build amd64 && !purego

package attention

import "golang.org/x/sys/cpu"

// AVX2/FMA versions of the tile loops (tile_amd64.s, dots_amd64.s), and AVX-512 products, chosen
// at start-up when the CPU has them; the purego build tag keeps the pure-Go loops. (The exps are
// math32's rows, which choose their own path.) The products sum in the
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
	mulAdd, dots = mulAddGo, dotsGo
	switch path {
	case "avx2":
		mulAdd, dots = mulAddAVX2, dotsAVX2Rows
	case "avx512":
		mulAdd, dots = mulAddAVX512, dotsAVX2Rows
	}
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
