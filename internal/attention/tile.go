package attention

import "github.com/mambago/mamba/internal/math32"

// The loops every tile of the float32 kernels runs, pure Go. The amd64 files may replace mulAdd
// and dots with vector versions; the products sum in the same order with fused multiply-adds (the
// dot products in eight interleaved partial sums), so the paths differ in the last bits only, and
// one of them is used for every item of a run. The exps are math32's rows (math32.ExpAffine),
// vectorised on their own path.

// mulAddGo sets c = a·b, or c += a·b when acc is set, where a is m×k with element (r, x) at
// a[r·ars + x·aks] (ars = lda, aks = 1 for a row-major a; ars = 1, aks = lda for a transposed
// one), b is k×n with rows ldb apart and c is m×n with rows ldc apart. Each c[r][j] is summed
// over x in increasing order, starting from c[r][j] or 0:
//
//	for r < m, j < n:  c[r][j] (= 0) ; for x < k:  c[r][j] += a[r][x]·b[x][j]
func mulAddGo(c []float32, ldc int, a []float32, ars, aks int, b []float32, ldb int, m, n, k int, acc bool) {
	for r := range m {
		cr := c[r*ldc:][:n]
		if !acc {
			clear(cr)
		}
		for x := range k {
			av := a[r*ars+x*aks]
			br := b[x*ldb:][:n]
			for j, bv := range br {
				cr[j] += av * bv
			}
		}
	}
}

// dotsGo sets s[j] = q·k_j for the n rows k_j = k[j·ldk : j·ldk+len(q)], each dot product summed
// in increasing order of the channel.
func dotsGo(s, q, k []float32, ldk, n int) {
	d := len(q)
	for j := range n {
		kj := k[j*ldk:][:d]
		var acc float32
		for i, qv := range q {
			acc += qv * kj[i]
		}
		s[j] = acc
	}
}

var (
	mulAdd = mulAddGo
	dots   = dotsGo
)

// expAffine sets dst[i] = exp(a·src[i] + b). dst may be src.
func expAffine(dst, src []float32, a, b float32) { math32.ExpAffine(dst, src, a, b) }

// expBias sets dst[i] = exp(a·src[i] + bias[i]): the argument rounded to float32, then the exp of
// math32.ExpAffine (so a constant bias gives expAffine's bits). dst may be src.
func expBias(dst, src []float32, a float32, bias []float32) {
	bias = bias[:len(src)]
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = a*v + bias[i]
	}
	math32.ExpAffine(dst, dst, 1, 0)
}

// transpose writes the rows×cols block of src (rows ld apart) into dst as cols×rows:
// dst[c·rows + r] = src[r·ld + c].
func transpose(dst, src []float32, ld, rows, cols int) {
	for r := range rows {
		sr := src[r*ld:][:cols]
		for c, v := range sr {
			dst[c*rows+r] = v
		}
	}
}

// storeRows sets the rows×n block of dst (rows ld apart) to f times the contiguous rows×n block
// of src.
func storeRows(dst []float32, ld int, src []float32, rows, n int, f float32) {
	for r := range rows {
		d, s := dst[r*ld:][:n], src[r*n:][:n]
		for i, v := range s {
			d[i] = f * v
		}
	}
}

// scaleRows multiplies the rows×n block of x (rows ld apart) by f.
func scaleRows(x []float32, ld, rows, n int, f float32) {
	for r := range rows {
		xr := x[r*ld:][:n]
		for i := range xr {
			xr[i] *= f
		}
	}
}

// bestPath is the fastest loop path this build and CPU run: the last assembly path, or "go".
func bestPath() string {
	if p := asmPaths(); len(p) > 0 {
		return p[len(p)-1]
	}
	return "go"
}
