//go:build !purego

package math32

import (
	"math"

	"golang.org/x/sys/cpu"
)

// available lists Go and the vector paths this CPU runs (the operating system saving their
// registers is part of x/sys/cpu's answer).
var available = func() []Path {
	p := []Path{Go}
	x := cpu.X86
	if x.HasAVX2 && x.HasFMA {
		p = append(p, AVX2)
		if x.HasAVX512F && x.HasAVX512DQ && x.HasAVX512BW && x.HasAVX512VL {
			p = append(p, AVX512)
		}
	}
	return p
}()

// cpuid runs the CPUID instruction for a leaf (sub-leaf 0).
//
//go:noescape
func cpuid(leaf uint32) (a, b, c, d uint32)

// cpuFamily returns the CPU's vendor string and family (base family plus
// extended family), as CPUID reports them.
func cpuFamily() (vendor string, family int) {
	_, b, c, d := cpuid(0)
	v := make([]byte, 0, 12)
	for _, r := range []uint32{b, d, c} {
		v = append(v, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
	}
	a, _, _, _ := cpuid(1)
	family = int(a>>8) & 0xf
	if family == 0xf {
		family += int(a>>20) & 0xff
	}
	return string(v), family
}

// The vector exp reduces x = k·ln2 + r with |r| ≤ ln2/2 and evaluates e^r by a polynomial: a
// table of 2^(j/64) as in Exp would need a gather.
const (
	// ln2Hi has its 9 low mantissa bits zero, so k·ln2Hi is exact for |k| ≤ 2^8 and
	// x − k·ln2Hi is exact (Cody–Waite range reduction); ln2Lo = ln 2 − ln2Hi.
	ln2Hi = 0.693145751953125
	ln2Lo = 1.428606820309417e-06
	// Coefficients of exp(r) ≈ 1 + r·(c1 + r·(c2 + … + r·c6)) on |r| ≤ ln2/2: Chebyshev
	// interpolation (relative error 2.5e-9) with c1 = 1.0000000377 then rounded to 1, which
	// adds at most 1.3e-8; together ≤ 1.6e-8 in exact arithmetic, about 1 ulp in float32.
	expC1 = 1
	expC2 = 0.5000000047117784
	expC3 = 0.16666415514653618
	expC4 = 0.04166635289669687
	expC5 = 0.008375126398132253
	expC6 = 0.0013941108438804987
)

// vecConsts holds the constants of the vector functions broadcast to 16 lanes (64 bytes a row),
// in the order rows_amd64.s names them; the 8-lane code reads the first half of a row.
var vecConsts = [...][16]float32{
	splat(log2E), splat(roundMagic), splat(-ln2Hi), splat(-ln2Lo),
	splat(expC6), splat(expC5), splat(expC4), splat(expC3), splat(expC2), splat(expC1), splat(1),
	splat(ExpLo), splat(ExpHi), splat(math.Float32frombits(roundMagicBits - 127)),
	splat(2), splat(1.0 / 3), splat(1.0 / 5), splat(1.0 / 7), splat(1.0 / 9), splat(1.0 / 11), splat(1.0 / 13),
	splat(SoftplusThreshold), splat(math.Float32frombits(1<<31 - 1)),
}

func splat(v float32) (r [16]float32) {
	for i := range r {
		r[i] = v
	}
	return r
}

// rowsVec runs element-wise function op over n elements, n a multiple of the width: 16 lanes
// when wide, else 8. d is read or written only by the ops with two outputs.
//
//go:noescape
func rowsVec(op int, y, d, x *float32, n int, a, b float32, wide bool)

// expScaledVec is ExpScaledRows over rows of n elements, n a multiple of the width.
//
//go:noescape
func expScaledVec(dst *float32, n, rows int, x *float32, xStride int, a *float32, aStride int, wide bool)

// rows runs op over whole vectors and then over the rest padded to a whole vector, so that
// every element gets the same bits wherever it stands in the row.
func rows(op int, y, d, x []float32, a, b float32) {
	w := Lanes(16) // the path's width
	if w == 0 {
		rowsGo(op, y, d, x, a, b)
		return
	}
	n := len(x) / w * w
	var bx, by, bd [16]float32
	dp := &bd[0] // where a one-output op's d would go
	if n > 0 {
		if d != nil {
			dp = &d[0]
		}
		rowsVec(op, &y[0], dp, &x[0], n, a, b, w == 16)
	}
	if n == len(x) {
		return
	}
	k := copy(bx[:], x[n:])
	rowsVec(op, &by[0], &bd[0], &bx[0], w, a, b, w == 16)
	copy(y[n:], by[:k])
	if d != nil {
		copy(d[n:], bd[:k])
	}
}

func expScaledRows(dst []float32, n, rows int, x []float32, xStride int, a []float32, aStride int) {
	w := Lanes(n)
	if w == 0 {
		expScaledRowsGo(dst, n, rows, x, xStride, a, aStride)
		return
	}
	expScaledVec(&dst[0], n, rows, &x[0], xStride, &a[0], aStride, w == 16)
}
