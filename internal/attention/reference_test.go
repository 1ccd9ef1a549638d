package attention

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// TestReferenceGradFD checks the reference's gradients against central finite differences of
// loss = Σ out ⊙ w with a random w, on every input element, with grouped heads and documents.
func TestReferenceGradFD(t *testing.T) {
	for _, c := range []struct {
		s    Shape
		docs int
	}{
		{Shape{Batch: 2, Len: 6, Heads: 4, KVHeads: 2, HeadDim: 3}, 3},
		{Shape{Batch: 1, Len: 7, Heads: 2, KVHeads: 1, HeadDim: 4}, 0},
	} {
		r := rand.New(rand.NewPCG(3, 4))
		in := randomCase(r, c.s, c.docs)
		nq := c.s.count(queryRows)
		w := testutil.Normals(r, nq, 1)
		ref := newReference(t, c.s)
		got := run[float64](t, ref, in, w)
		out := make([]float64, nq)
		loss := func() float64 {
			if err := ref.Forward(in, out); err != nil {
				t.Fatal(err)
			}
			var l float64
			for i, v := range out {
				l += v * w[i]
			}
			return l
		}
		const h = 1e-6
		for _, x := range []struct {
			name string
			v, g []float64
		}{{"Q", in.Q, got.dq}, {"K", in.K, got.dk}, {"V", in.V, got.dv}} {
			fd := make([]float64, len(x.v))
			for i := range x.v {
				v := x.v[i]
				x.v[i] = v + h
				lp := loss()
				x.v[i] = v - h
				lm := loss()
				x.v[i] = v
				fd[i] = (lp - lm) / (2 * h)
			}
			testutil.Close(t, name(c.s, 0, c.docs)+" d"+x.name, x.g, fd, 1e-7)
		}
	}
}

// TestPackedDocuments: a packed batch with document resets gives the outputs and gradients of
// the documents run as separate sequences, in both kernels.
func TestPackedDocuments(t *testing.T) {
	s := Shape{Batch: 1, Len: 40, Heads: 2, KVHeads: 1, HeadDim: 8}
	r := rand.New(rand.NewPCG(5, 6))
	in := randomCase(r, s, 0)
	bounds := []int{0, 3, 4, 21, 40} // documents [0,3) [3,4) [4,21) [21,40)
	in.Resets = make([]uint8, s.Len)
	for _, b := range bounds[1 : len(bounds)-1] {
		in.Resets[b] = 1
	}
	nq := s.count(queryRows)
	dout := testutil.Normals(r, nq, 1)
	packed := run[float64](t, newReference(t, s), in, dout)
	packed32 := run(t, newFlash(t, s, Options{Tile: 8}), to32(in), testutil.Convert[float32](dout))
	ldq, ldk := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	for d := range len(bounds) - 1 {
		lo, hi := bounds[d], bounds[d+1]
		ds := s
		ds.Len = hi - lo
		doc := Inputs[float64]{Q: in.Q[lo*ldq : hi*ldq], K: in.K[lo*ldk : hi*ldk], V: in.V[lo*ldk : hi*ldk]}
		want := run[float64](t, newReference(t, ds), doc, dout[lo*ldq:hi*ldq])
		for _, x := range []struct {
			name      string
			got, want []float64
			ld        int
		}{{"out", packed.out, want.out, ldq}, {"dQ", packed.dq, want.dq, ldq}, {"dK", packed.dk, want.dk, ldk}, {"dV", packed.dv, want.dv, ldk}} {
			testutil.Close(t, "reference "+x.name, x.got[lo*x.ld:hi*x.ld], x.want, 1e-14)
		}
		got32 := run(t, newFlash(t, ds, Options{Tile: 8}), to32(doc), testutil.Convert[float32](dout[lo*ldq:hi*ldq]))
		for _, x := range []struct {
			name      string
			got, want []float32
			ld        int
		}{{"out", packed32.out, got32.out, ldq}, {"dQ", packed32.dq, got32.dq, ldq}, {"dK", packed32.dk, got32.dk, ldk}, {"dV", packed32.dv, got32.dv, ldk}} {
			testutil.Close(t, "flash "+x.name, x.got[lo*x.ld:hi*x.ld], x.want, 1e-6)
		}
	}
}

// TestResetsAtPositionZero: a reset on the first token of a row changes nothing, and nonzero
// values other than 1 count as resets.
func TestResetsAtPositionZero(t *testing.T) {
	s := Shape{Batch: 2, Len: 9, Heads: 1, KVHeads: 1, HeadDim: 4}
	r := rand.New(rand.NewPCG(8, 9))
	in := to32(randomCase(r, s, 0))
	nq := s.count(queryRows)
	dout := testutil.Convert[float32](testutil.Normals(r, nq, 1))
	plain := run(t, newFlash(t, s, Options{}), in, dout)
	in.Resets = []uint8{1, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0}
	reset := run(t, newFlash(t, s, Options{}), in, dout)
	if !slices.Equal(plain.out, reset.out) || !slices.Equal(plain.dq, reset.dq) || !slices.Equal(plain.dk, reset.dk) {
		t.Errorf("a reset at position 0 changed the result")
	}
}
