package attention

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/testutil"
)

// randomCase draws Q, K, V ~ N(0, σ²) (σ = 1.5 makes the softmax peaked enough that the online
// rescaling matters), and, when docs is set, document starts at random positions (about one
// token in docs).
func randomCase(r *rand.Rand, s Shape, docs int) Inputs[float64] {
	nq, nk := s.count(queryRows), s.count(keyRows)
	in := Inputs[float64]{Q: testutil.Normals(r, nq, 1.5), K: testutil.Normals(r, nk, 1.5), V: testutil.Normals(r, nk, 1)}
	if docs > 0 {
		in.Resets = make([]uint8, s.Batch*s.Len)
		for i := range in.Resets {
			if r.IntN(docs) == 0 {
				in.Resets[i] = 1
			}
		}
	}
	return in
}

func to32(in Inputs[float64]) Inputs[float32] {
	return Inputs[float32]{Q: testutil.Convert[float32](in.Q), K: testutil.Convert[float32](in.K), V: testutil.Convert[float32](in.V), Resets: in.Resets}
}

// result is one forward and backward: out and the three gradients.
type result[T float32 | float64] struct{ out, dq, dk, dv []T }

// run builds the kernel (Flash for float32, Reference for float64) and runs Forward, then
// Backward with upstream gradient dout.
func run[T float32 | float64](t testing.TB, k Kernel[T], in Inputs[T], dout []T) result[T] {
	t.Helper()
	s := k.Shape()
	nq, nk := s.count(queryRows), s.count(keyRows)
	res := result[T]{out: make([]T, nq), dq: make([]T, nq), dk: make([]T, nk), dv: make([]T, nk)}
	if err := k.Forward(in, res.out); err != nil {
		t.Fatal(err)
	}
	if err := k.Backward(in, res.out, dout, Grads[T]{Q: res.dq, K: res.dk, V: res.dv}); err != nil {
		t.Fatal(err)
	}
	return res
}

func newFlash(t testing.TB, s Shape, o Options) *Flash {
	t.Helper()
	k, err := New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newReference(t testing.TB, s Shape) *Reference {
	t.Helper()
	k, err := NewReference(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func name(s Shape, tile, docs int) string {
	return fmt.Sprintf("B%d_L%d_H%d_KV%d_hd%d_T%d_docs%d", s.Batch, s.Len, s.Heads, s.KVHeads, s.HeadDim, tile, docs)
}

// loopPaths names the tile loops this machine can run: "go", then the assembly paths.
func loopPaths() []string { return append([]string{"go"}, asmPaths()...) }

// withPaths runs f once per loop path, with that path selected for the tile loops and, where
// math32 has it, for math32's rows (the exps).
func withPaths(t *testing.T, f func(t *testing.T)) {
	for _, p := range loopPaths() {
		t.Run(p, func(t *testing.T) {
			useAsm(p)
			defer useAsm(bestPath())
			prev := math32.Current()
			defer math32.SetPath(prev)
			for _, mp := range math32.Paths() {
				if mp.String() == p {
					if err := math32.SetPath(mp); err != nil {
						t.Fatal(err)
					}
				}
			}
			f(t)
		})
	}
}
