package layers

import (
	"hash/fnv"

	"github.com/mambago/mamba/internal/rng"
)

// newRNG seeds a SplitMix64 stream from seed and a label (a parameter name),
// so that each parameter's values depend only on the seed and its own name,
// and are the same on every Go version.
func newRNG(seed uint64, label string) *rng.Rand {
	h := fnv.New64a()
	h.Write([]byte(label))
	r := rng.New(seed, h.Sum64())
	return &r
}
