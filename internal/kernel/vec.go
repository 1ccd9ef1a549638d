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

// AddRow sets dst[i] += src[i] for i < len(dst); src must be at least as long.
func AddRow(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// DotRows sets y[r·ldy + j] = x_r·w_j, or adds it to y[r·ldy + j] with add, for the rows
// x_r of x (rows, k) and w_j of w (n, k): the products of a few rows, a decoder's step. Every
// output is summed in one order whatever rows, n and the tile that computes it: eight
// interleaved partial sums s_l over k ≡ l (mod 8), added as ((s0+s4)+(s2+s6)) +
// ((s1+s5)+(s3+s7)), then the last k mod 8 products one by one. So a row's outputs do not
// depend on the other rows nor on how a caller cuts w into blocks. On amd64 with AVX2 and
// FMA, and k a multiple of 8, the partial sums are the lanes of fused multiply-adds over
// tiles of 4 rows × 2 outputs (1 row × 4 outputs for fewer rows); otherwise dotRowsGo.
func DotRows(y []float32, ldy int, x []float32, rows int, w []float32, k, n int, add bool) {
	if rows <= 0 || n <= 0 || k <= 0 {
		return
	}
	_, _, _ = y[(rows-1)*ldy+n-1], x[rows*k-1], w[n*k-1] // bounds, once
	if dotRowsVec == nil || k%8 != 0 {
		dotRowsGo(y, ldy, x, rows, w, k, n, add)
		return
	}
	dotRowsVec(y, ldy, x, rows, w, k, n, add)
}

// dotRowsVec is DotRows's vector tiling where there is one (vec_amd64.go), for k a multiple of 8.
var dotRowsVec func(y []float32, ldy int, x []float32, rows int, w []float32, k, n int, add bool)

// dotRowsGo is DotRows in Go: the same partial sums with separate multiplies and adds.
func dotRowsGo(y []float32, ldy int, x []float32, rows int, w []float32, k, n int, add bool) {
	for r := range rows {
		xr := x[r*k : (r+1)*k]
		for j := range n {
			wj := w[j*k : (j+1)*k]
			var s [8]float32
			i := 0
			for ; i+8 <= k; i += 8 {
				for l := range s {
					s[l] += xr[i+l] * wj[i+l]
				}
			}
			v := ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))
			for ; i < k; i++ {
				v += xr[i] * wj[i]
			}
			if add {
				v += y[r*ldy+j]
			}
			y[r*ldy+j] = v
		}
	}
}
