package scan

import "math"

// Float32 scalar math for the hot loops: no float64 round trips, no calls into package math
// except the bit casts, which compile to register moves.

const (
	log2e = 1.44269504088896341
	// ln2Hi has its 9 low mantissa bits zero, so k·ln2Hi is exact for |k| ≤ 2^8 and
	// x − k·ln2Hi is exact (Cody–Waite range reduction); ln2Lo = ln 2 − ln2Hi.
	ln2Hi = 0.693145751953125
	ln2Lo = 1.428606820309417e-06
	// roundMagic = 1.5·2^23: adding it to |v| < 2^22 rounds v to an integer held in the low
	// mantissa bits.
	roundMagic     = 12582912
	roundMagicBits = 0x4b400000 // math.Float32bits(roundMagic)
	// expLo: below it exp(x) < 2^-126 is subnormal and is returned as 0. expHi: above it
	// k = round(x/ln 2) could reach 128, outside the normal exponent range.
	expLo = -87.33654
	expHi = 88.37626
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

// exp32 returns e^x in float32 with a relative error of about 1e-7 (see expReduced). Results
// that would be subnormal are 0; NaN gives NaN.
func exp32(x float32) float32 {
	if x < expLo || x > expHi {
		return expOutside(x)
	}
	return expReduced(x)
}

// expScaled sets dst[n] = e^{s·a[n]}: exp32 over a row, with the polynomial inlined in the loop.
func expScaled(dst, a []float32, s float32) {
	dst = dst[:len(a)]
	for n, an := range a {
		x := s * an
		if x < expLo || x > expHi {
			dst[n] = expOutside(x)
			continue
		}
		dst[n] = expReduced(x)
	}
}

// expReduced is e^x for x in [expLo, expHi]: x = k·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6
// polynomial, 2^k put into the exponent bits.
func expReduced(x float32) float32 {
	t := x*log2e + roundMagic
	kf := t - roundMagic
	r := (x - kf*ln2Hi) - kf*ln2Lo
	return expPoly(r) * math.Float32frombits((math.Float32bits(t)-(roundMagicBits-127))<<23)
}

// expPoly is e^r for |r| ≤ ln2/2, by Estrin's scheme (pairs of terms in r² evaluated
// independently): a shorter dependency chain than Horner's, which is what limits scalar code.
func expPoly(r float32) float32 {
	r2 := r * r
	return (1 + r) + r2*((expC2+r*expC3)+r2*((expC4+r*expC5)+r2*expC6))
}

// expOutside is exp32 for arguments outside [expLo, expHi].
func expOutside(x float32) float32 {
	switch {
	case x < expLo:
		return 0
	case x > 88.72284: // ln(MaxFloat32)
		return float32(math.Inf(1))
	}
	// k = 128: 2^k does not fit the exponent field; scale by 2^127, then by 2.
	r := (x - 128*ln2Hi) - 128*ln2Lo
	return 2 * (expPoly(r) * 0x1p127)
}

// log1p01 returns ln(1+e) for e in [0, 1]: with w = e/(2+e) ∈ [0, 1/3],
// ln(1+e) = 2·atanh(w) = 2w·(1 + w²/3 + w⁴/5 + …), truncated after w¹³ (relative error < 2e-8).
func log1p01(e float32) float32 {
	w := e / (2 + e)
	w2 := w * w
	return 2 * w * (1 + w2*(1.0/3+w2*(1.0/5+w2*(1.0/7+w2*(1.0/9+w2*(1.0/11+w2*(1.0/13)))))))
}

// softplus32 returns Δ = softplus(x) = ln(1 + e^x) (x itself above softplusThreshold) and
// dΔ/dx = σ(x), computed from e = e^{−|x|} ≤ 1 so that nothing overflows.
func softplus32(x float32) (float32, float32) {
	if x > softplusThreshold {
		return x, 1
	}
	e := exp32(-abs32(x))
	s := 1 / (1 + e)
	if x >= 0 {
		return x + log1p01(e), s
	}
	return log1p01(e), e * s
}

// sigmoid32 returns σ(x) = 1/(1 + e^{−x}) without overflow.
func sigmoid32(x float32) float32 {
	e := exp32(-abs32(x))
	s := 1 / (1 + e)
	if x < 0 {
		return e * s
	}
	return s
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// softplusRow replaces x by softplus(x) and sets d to its derivative σ(x) (see softplus32).
var softplusRow = softplusRowGo

// sigmoidRow sets s to σ(x).
var sigmoidRow = sigmoidRowGo

func softplusRowGo(x, d []float32) {
	d = d[:len(x)]
	for j, v := range x {
		x[j], d[j] = softplus32(v)
	}
}

func sigmoidRowGo(x, s []float32) {
	s = s[:len(x)]
	for j, v := range x {
		s[j] = sigmoid32(v)
	}
}

// ExpAffine sets dst[i] = e^(a·src[i] + b) with exp32 (relative error about 1e-7, subnormal
// results flushed to 0, NaN kept). dst may be src. The other fused float32 ops (softmax, SiLU)
// use it, so the project has one float32 exp.
func ExpAffine(dst, src []float32, a, b float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = exp32(a*v + b)
	}
}
