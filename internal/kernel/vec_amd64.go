//go:build !purego

package kernel

import "golang.org/x/sys/cpu"

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		MulAdd, Dot, dotRowsVec = mulAddFMA, dotFMA, dotRowsAVX2
	}
}

func mulAddFMA(dst, a, b []float32) {
	if len(dst) > 0 {
		a, b = a[:len(dst)], b[:len(dst)]
		mulAddAVX2(&dst[0], &a[0], &b[0], len(dst))
	}
}

func dotFMA(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	return dotAVX2(&a[0], &b[0], len(a))
}

//go:noescape
func mulAddAVX2(dst, a, b *float32, n int)

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func dotTile4x2(y *float32, ldy int, x *float32, k int, w *float32, ldw int, add bool)

//go:noescape
func dotTile1x4(y *float32, ldy int, x *float32, k int, w *float32, ldw int, add bool)

//go:noescape
func dotTile1x1(y *float32, ldy int, x *float32, k int, w *float32, ldw int, add bool)

// dotRowsAVX2 runs DotRows over the tiles: 4 rows × 2 outputs, w's pairs of rows in the
// outer loop (a pair stays in L1 while every row goes by); the rows past a multiple of 4
// take 1 × 4 tiles, and what is left single outputs.
func dotRowsAVX2(y []float32, ldy int, x []float32, rows int, w []float32, k, n int, add bool) {
	r4 := rows / 4 * 4
	j := 0
	for ; j+2 <= n; j += 2 {
		for r := 0; r < r4; r += 4 {
			dotTile4x2(&y[r*ldy+j], ldy, &x[r*k], k, &w[j*k], k, add)
		}
	}
	for ; j < n; j++ {
		for r := 0; r < r4; r++ {
			dotTile1x1(&y[r*ldy+j], 0, &x[r*k], k, &w[j*k], k, add)
		}
	}
	for r := r4; r < rows; r++ {
		j := 0
		for ; j+4 <= n; j += 4 {
			dotTile1x4(&y[r*ldy+j], 0, &x[r*k], k, &w[j*k], k, add)
		}
		for ; j < n; j++ {
			dotTile1x1(&y[r*ldy+j], 0, &x[r*k], k, &w[j*k], k, add)
		}
	}
}
