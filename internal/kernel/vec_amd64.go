//go:build !purego

package kernel

import "golang.org/x/sys/cpu"

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		MulAdd, Dot = mulAddFMA, dotFMA
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
