package attention

// The loops every tile of the float32 kernels runs, pure Go. The amd64 files may replace mulAdd
// and dots with vector versions; each replacement sums in the same order with fused multiply-adds,
// so the two differ in the last bits only, and one of them is used for every item of a run.

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

// dot returns a·b summed in increasing order.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
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
