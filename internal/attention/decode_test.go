package attention

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/parallel"
	"github.com/mambago/mamba/internal/testutil"
)

// TestDecodeMatchesForward: a decode step at position n−1 against a cache holding the first n
// keys and values gives row n−1 of the full causal forward, in float32 (against Flash) and in
// float64 (against Reference), with one chunk and with several.
func TestDecodeMatchesForward(t *testing.T) {
	withPaths(t, testDecodeMatchesForward)
}

func testDecodeMatchesForward(t *testing.T) {
	for _, s := range []Shape{
		{Batch: 2, Len: 9, Heads: 4, KVHeads: 2, HeadDim: 8},
		{Batch: 1, Len: 3*DecodeChunk + 17, Heads: 2, KVHeads: 1, HeadDim: 16},
		{Batch: 3, Len: DecodeChunk + 1, Heads: 3, KVHeads: 3, HeadDim: 64},
	} {
		t.Run(name(s, 0, 0), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(s.Len), 2))
			in := randomCase(r, s, 0)
			nq := s.count(queryRows)
			full64 := make([]float64, nq)
			if err := newReference(t, s).Forward(in, full64); err != nil {
				t.Fatal(err)
			}
			in32 := to32(in)
			full32 := make([]float32, nq)
			if err := newFlash(t, s, Options{}).Forward(in32, full32); err != nil {
				t.Fatal(err)
			}
			dec, err := NewDecoder(s, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ld := s.Heads * s.HeadDim
			for _, n := range []int{1, 2, DecodeChunk, DecodeChunk + 1, s.Len} {
				if n > s.Len {
					continue
				}
				q, q64 := make([]float32, s.Batch*ld), make([]float64, s.Batch*ld)
				want, want64 := make([]float32, s.Batch*ld), make([]float64, s.Batch*ld)
				for b := range s.Batch {
					row := (b*s.Len + n - 1) * ld
					copy(q[b*ld:(b+1)*ld], in32.Q[row:row+ld])
					copy(q64[b*ld:(b+1)*ld], in.Q[row:row+ld])
					copy(want[b*ld:(b+1)*ld], full32[row:row+ld])
					copy(want64[b*ld:(b+1)*ld], full64[row:row+ld])
				}
				got := make([]float32, s.Batch*ld)
				if err := dec.Step(got, q, in32.K, in32.V, n); err != nil {
					t.Fatal(err)
				}
				testutil.Close(t, "decode vs flash", got, want, 3e-6)
				testutil.Close(t, "decode vs reference", got, want64, 3e-6)
				got64 := make([]float64, s.Batch*ld)
				if err := DecodeReference(s, got64, q64, in.K, in.V, n); err != nil {
					t.Fatal(err)
				}
				testutil.Close(t, "decode reference vs reference", got64, want64, 1e-14)
			}
		})
	}
}

// TestDecodeWorkersBitwise: a decode step is bitwise the same for any worker count.
func TestDecodeWorkersBitwise(t *testing.T) {
	withPaths(t, testDecodeWorkersBitwise)
}

func testDecodeWorkersBitwise(t *testing.T) {
	s := Shape{Batch: 2, Len: 5 * DecodeChunk, Heads: 4, KVHeads: 2, HeadDim: 16}
	in := to32(randomCase(rand.New(rand.NewPCG(1, 1)), s, 0))
	q := in.Q[:s.Batch*s.Heads*s.HeadDim]
	var want []float32
	for _, procs := range []int{1, 2, 5} {
		prev := runtime.GOMAXPROCS(procs)
		for _, w := range []int{0, 1, 3} {
			d, err := NewDecoder(s, Options{Workers: w})
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(q))
			if err := d.Step(got, q, in.K, in.V, 4*DecodeChunk+3); err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = got
			} else if !slices.Equal(got, want) {
				t.Errorf("GOMAXPROCS %d, Workers %d: decode output differs", procs, w)
			}
		}
		for _, size := range []int{1, 3} { // on a team
			d, err := NewDecoder(s, Options{})
			if err != nil {
				t.Fatal(err)
			}
			team := parallel.NewTeam(size)
			d.SetTeam(team)
			got := make([]float32, len(q))
			if err := d.Step(got, q, in.K, in.V, 4*DecodeChunk+3); err != nil {
				t.Fatal(err)
			}
			team.Close()
			if !slices.Equal(got, want) {
				t.Errorf("GOMAXPROCS %d, a team of %d: decode output differs", procs, size)
			}
		}
		runtime.GOMAXPROCS(prev)
	}
}
