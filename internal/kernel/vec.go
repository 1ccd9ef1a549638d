package kernel

// MulAdd sets dst[i] += a[i]·b[i] for i < len(dst); a and b must be at least
// as long as dst. On amd64 with AVX2 and FMA it runs eight lanes per fused
// multiply-add (vec_amd64.s), elsewhere the plain loop mulAddGo.
var MulAdd = mulAddGo

// Dot returns Σ_i a[i]·b[i] over len(a) elements (b at least as long), in
// float32: on amd64 with AVX2 and FMA in four eight-lane partial sums,
// elsewhere in four scalar ones (dotGo).
var Dot = dotGo

func mulAddGo(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] += a[i] * b[i]
	}
}

func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
