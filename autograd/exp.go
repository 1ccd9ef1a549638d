package autograd

import "math"

// expAffine sets dst[i] = e^(a·src[i] + b) in float32, without float64 round
// trips, for a whole row at once (dst may be src): x = n·ln2 + r with
// |r| ≤ ln2/2 (n rounded by adding 1.5·2^23, ln2 split in two parts so that r
// is exact), e^r from the Cephes degree-6 polynomial, then the scaling by 2^n
// done in two halves so that results down to the subnormal range are right.
// Relative error ≤ 2e-7 (tested against math.Exp).
func expAffine(dst, src []float32, a, b float32) {
	const magic, magicBits = 12582912, 0x4b400000 // 1.5·2^23 and its bits
	dst = dst[:len(src)]
	for i, v := range src {
		x := a*v + b
		switch {
		case x != x:
			dst[i] = x
			continue
		case x > 88.72283:
			dst[i] = float32(math.Inf(1))
			continue
		case x < -103.97208:
			dst[i] = 0
			continue
		}
		t := x*math.Log2E + magic
		fn := t - magic
		n := int32(math.Float32bits(t)) - magicBits
		r := x - fn*0.693359375
		r -= fn * -2.12194440e-4
		p := float32(1.9875691500e-4)
		p = p*r + 1.3981999507e-3
		p = p*r + 8.3334519073e-3
		p = p*r + 4.1665795894e-2
		p = p*r + 1.6666665459e-1
		p = p*r + 5.0000001201e-1
		y := p*r*r + r + 1
		n1 := n >> 1
		dst[i] = y * math.Float32frombits(uint32(n1+127)<<23) * math.Float32frombits(uint32(n-n1+127)<<23)
	}
}
