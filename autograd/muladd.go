package autograd

// mulAdd sets dst[i] += a[i]·b[i] for i < len(dst); a and b must be at
// least as long as dst. It is the inner loop of the fast conv kernel: on
// amd64 with AVX2 and FMA it runs eight lanes per fused multiply-add
// (muladd_amd64.s), elsewhere the plain loop mulAddGo.
var mulAdd = mulAddGo

func mulAddGo(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] += a[i] * b[i]
	}
}
