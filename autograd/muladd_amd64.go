package autograd

import "golang.org/x/sys/cpu"

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		mulAdd = mulAddFMA
	}
}

func mulAddFMA(dst, a, b []float32) {
	if len(dst) > 0 {
		a, b = a[:len(dst)], b[:len(dst)]
		mulAddAVX2(&dst[0], &a[0], &b[0], len(dst))
	}
}

//go:noescape
func mulAddAVX2(dst, a, b *float32, n int)
