package math32

import "math"

// SoftplusThreshold: softplus(x) is taken as x above it, as torch.nn.functional.softplus does.
const SoftplusThreshold = 20

// Constants of the range reduction (the vector exp of rows_amd64.s uses them too).
const (
	log2E = 1.44269504088896341
	// roundMagic = 1.5·2^23: adding it to |v| < 2^22 rounds v to an integer held in the low
	// mantissa bits (two's complement in the low 22 bits).
	roundMagic     = 12582912
	roundMagicBits = 0x4b400000 // math.Float32bits(roundMagic)
	// ExpLo: below it exp(x) < 2^-126 is subnormal and is returned as 0. ExpHi: above it
	// k = round(x/ln 2) could reach 128, outside the normal exponent range.
	ExpLo = -87.33654
	ExpHi = 88.37626
	// ln2Hi64 is ln2/64 with its 13 low mantissa bits zero, so k·ln2Hi64 is exact for
	// |k| ≤ 2^13 (all k of [ExpLo, ExpHi]·64/ln2) and x − k·ln2Hi64 is exact (Cody–Waite range
	// reduction); ln2Lo64 = ln2/64 − ln2Hi64.
	ln2Hi64 = 0.01082611083984375
	ln2Lo64 = math.Ln2/64 - ln2Hi64
)

// exp2Table holds the bits of 2^(j/64), j = 0 … 63, rounded to float32.
var exp2Table = func() (t [64]uint32) {
	for j := range t {
		t[j] = math.Float32bits(float32(math.Exp2(float64(j) / 64)))
	}
	return t
}()

// Exp returns e^x in float32 with a relative error ≤ 1.6e-7 (see expReduced). Results that
// would be subnormal are 0; NaN gives NaN.
func Exp(x float32) float32 {
	if x < ExpLo || x > ExpHi {
		return expOutside(x)
	}
	return expReduced(x)
}

// ExpRow sets dst[n] = e^{s·a[n]} (Exp over a row), given lo ≤ a[n] ≤ hi. When s·lo and s·hi
// are in [ExpLo, ExpHi], so is every s·a[n] (rounding is monotonic) and the loop runs without a
// range test or a call, which would make the compiler spill its registers in every iteration.
func ExpRow(dst, a []float32, s, lo, hi float32) {
	dst = dst[:len(a)]
	if x, y := s*lo, s*hi; x >= ExpLo && x <= ExpHi && y >= ExpLo && y <= ExpHi {
		for n, an := range a {
			dst[n] = expReduced(s * an)
		}
		return
	}
	for n, an := range a {
		dst[n] = Exp(s * an)
	}
}

// Bounds returns the least and the greatest element of a (not empty).
func Bounds(a []float32) (lo, hi float32) {
	lo, hi = a[0], a[0]
	for _, v := range a[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// expParts splits x = (64k + j)·ln2/64 + r with |r| ≤ ln2/128 and returns e^r − 1 ≈ r + r²/2
// (truncation error r³/6 ≤ 2.7e-8) and the bits of t, whose low bits hold 64k + j: j = u&63 and,
// because roundMagicBits is a multiple of 64 whose bits from 2^6 up shift out of 32 bits,
// u>>6<<23 is k in the exponent field.
func expParts(x float32) (p float32, u uint32) {
	t := x*(64*log2E) + roundMagic
	kf := t - roundMagic
	r := (x - kf*ln2Hi64) - kf*ln2Lo64
	return r * (1 + r*0.5), math.Float32bits(t)
}

// expReduced is e^x for x in [ExpLo, ExpHi]: s = 2^(k + j/64) from the table with k added to
// its exponent bits, then s·e^r = s + s·(e^r − 1), which rounds once instead of rounding
// 1 + (e^r − 1) first. Few enough operations that two exps per element stay cheap in scalar code.
func expReduced(x float32) float32 {
	p, u := expParts(x)
	s := math.Float32frombits(exp2Table[u&63] + u>>6<<23)
	return s + s*p
}

// expOutside is Exp for arguments outside [ExpLo, ExpHi].
func expOutside(x float32) float32 {
	switch {
	case x < ExpLo:
		return 0
	case x > 88.72284: // ln(MaxFloat32)
		return float32(math.Inf(1))
	}
	// k may be 128: 2^k does not fit the exponent field; scale by 2^(k−1), then by 2.
	p, u := expParts(x)
	s := math.Float32frombits(exp2Table[u&63] + (u>>6-1)<<23)
	return 2 * (s + s*p)
}

// log1p01 returns ln(1+e) for e in [0, 1]: with w = e/(2+e) ∈ [0, 1/3],
// ln(1+e) = 2·atanh(w) = 2w·(1 + w²/3 + w⁴/5 + …), truncated after w¹³ (relative error < 2e-8).
func log1p01(e float32) float32 {
	w := e / (2 + e)
	w2 := w * w
	return 2 * w * (1 + w2*(1.0/3+w2*(1.0/5+w2*(1.0/7+w2*(1.0/9+w2*(1.0/11+w2*(1.0/13)))))))
}

// Softplus returns Δ = softplus(x) = ln(1 + e^x) (x itself above SoftplusThreshold) and
// dΔ/dx = σ(x), computed from e = e^{−|x|} ≤ 1 so that nothing overflows.
func Softplus(x float32) (float32, float32) {
	if x > SoftplusThreshold {
		return x, 1
	}
	m := -abs32(x) // e = e^m, with m ≤ 0 < ExpHi: only m < ExpLo needs a fix-up
	e := expReduced(m)
	if m < ExpLo {
		e = 0
	}
	s := 1 / (1 + e)
	if x >= 0 {
		return x + log1p01(e), s
	}
	return log1p01(e), e * s
}

// Sigmoid returns σ(x) = 1/(1 + e^{−x}) without overflow.
func Sigmoid(x float32) float32 {
	s, _ := sigmoids(x)
	return s
}

// sigmoids returns σ(x) and σ(−x) = 1 − σ(x), both from e = e^{−|x|} (as in Softplus), so
// that neither is computed by a cancelling subtraction.
func sigmoids(x float32) (float32, float32) {
	m := -abs32(x)
	e := expReduced(m)
	if m < ExpLo {
		e = 0
	}
	s := 1 / (1 + e)
	if x < 0 {
		return e * s, s
	}
	return s, e * s
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// SiLU returns silu(x) = x·σ(x) and its derivative σ(x)·(1 + x·(1 − σ(x))), with 1 − σ(x)
// taken as σ(−x).
func SiLU(x float32) (y, dy float32) {
	s, sm := sigmoids(x)
	return x * s, s * (1 + x*sm)
}
