package layers

import (
	"hash/fnv"
	"math"
)

// rng is SplitMix64 (Steele, Lea & Flood 2014): a 64-bit counter passed
// through a fixed mixer. It is written out here, not taken from math/rand, so
// that initialisation and sampling are the same on every Go version.
type rng struct{ s uint64 }

// newRNG seeds a stream from seed and a label (a parameter name), so that each
// parameter's values depend only on the seed and its own name.
func newRNG(seed uint64, label string) *rng {
	h := fnv.New64a()
	h.Write([]byte(label))
	r := &rng{s: seed ^ h.Sum64()}
	r.next()
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float64 is uniform in [0, 1) with 53 random bits.
func (r *rng) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// uniform is uniform in [-a, a).
func (r *rng) uniform(a float64) float64 { return a * (2*r.float64() - 1) }

// normal is a standard normal draw (Box–Muller, one value per call).
func (r *rng) normal() float64 {
	u := 1 - r.float64() // (0, 1]
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.float64())
}
