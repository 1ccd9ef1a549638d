// Package rng is the counter-based random generator behind every data stream
// and the model's initialisation and sampling.
//
// A stream draws batch k from New(seed, k, row): the state is a SplitMix64
// mix of the keys, so any batch can be produced on its own, in any order, by
// any goroutine, and a resumed run needs only the batch counter.
//
//	s ← s + 0x9e3779b97f4a7c15
//	z ← (s ⊕ s≫30)·0xbf58476d1ce4e5b9; z ← (z ⊕ z≫27)·0x94d049bb133111eb; out = z ⊕ z≫31
//
// The algorithm is fixed here, so the streams do not change with the Go version.
package rng

import (
	"math"
	"math/bits"
)

const golden = 0x9e3779b97f4a7c15

// Rand is a SplitMix64 generator. The zero value is a valid generator.
type Rand struct{ s uint64 }

// New returns a generator whose state mixes all keys in order.
func New(keys ...uint64) Rand {
	var s uint64
	for _, k := range keys {
		s = mix(s ^ mix(k+golden))
	}
	return Rand{s: s}
}

func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Uint64 returns the next 64 random bits.
func (r *Rand) Uint64() uint64 {
	r.s += golden
	return mix(r.s)
}

// Intn returns a uniform integer in [0, n) for n > 0 (Lemire's multiply-shift
// with rejection, so there is no modulo bias); it returns 0 for n <= 0.
func (r *Rand) Intn(n int) int {
	if n <= 0 {
		return 0
	}
	un := uint64(n)
	hi, lo := bits.Mul64(r.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), un)
		}
	}
	return int(hi)
}

// Float64 returns a uniform float64 in [0, 1) with 53 random bits.
func (r *Rand) Float64() float64 { return float64(r.Uint64()>>11) / (1 << 53) }

// Uniform returns a uniform float64 in [-a, a).
func (r *Rand) Uniform(a float64) float64 { return a * (2*r.Float64() - 1) }

// Normal returns a standard normal draw (Box–Muller, one value per call).
func (r *Rand) Normal() float64 {
	u := 1 - r.Float64() // (0, 1]
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.Float64())
}
