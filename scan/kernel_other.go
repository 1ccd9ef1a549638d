//go:build !amd64 || purego

package scan

// Without assembly (another architecture, or the purego build tag) the Go loops run.

func recur(h0, abar, B, C, du, y, hs []float32, steps, n, stride, bstride int, inPlace bool) {
	recurGo(h0, abar, B, C, du, y, hs, steps, n, stride, bstride, inPlace)
}

func scanReverse(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 []float32, steps, stride int) {
	scanReverseGo(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2, steps, stride)
}

func adjoint(mu, abar, C, gh []float32, steps, n, stride int) {
	adjointGo(mu, abar, C, gh, steps, n, stride)
}

func duDeltaRow(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 []float32) {
	duDeltaRowGo(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2)
}

// prefetchRows is a no-op without assembly.
func prefetchRows(p *float32, rows, stride, width int) {}
