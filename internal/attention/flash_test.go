package attention

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// cases cover: L below, at, and not a multiple of the tile; grouped (H ≠ KV) and multi-query
// heads; head sizes 8, 16 and 64 (and 2 and 12, which the assembly covers only in part); batch 1
// to 3; with and without packed documents (docs = mean document length, 0 = none).
var cases = []struct {
	s          Shape
	tile, docs int
}{
	{Shape{Batch: 1, Len: 1, Heads: 1, KVHeads: 1, HeadDim: 8}, 0, 0},
	{Shape{Batch: 2, Len: 5, Heads: 2, KVHeads: 1, HeadDim: 8}, 0, 0},
	{Shape{Batch: 1, Len: 37, Heads: 4, KVHeads: 2, HeadDim: 16}, 8, 0},
	{Shape{Batch: 3, Len: 29, Heads: 3, KVHeads: 3, HeadDim: 8}, 7, 6},
	{Shape{Batch: 2, Len: 64, Heads: 4, KVHeads: 1, HeadDim: 16}, 16, 0},
	{Shape{Batch: 2, Len: 70, Heads: 2, KVHeads: 2, HeadDim: 64}, 0, 0},
	{Shape{Batch: 1, Len: 150, Heads: 6, KVHeads: 2, HeadDim: 64}, 0, 20},
	{Shape{Batch: 3, Len: 45, Heads: 8, KVHeads: 4, HeadDim: 16}, 16, 3},
	{Shape{Batch: 1, Len: 200, Heads: 2, KVHeads: 1, HeadDim: 8}, 32, 50},
	{Shape{Batch: 2, Len: 33, Heads: 2, KVHeads: 1, HeadDim: 12}, 8, 9},
	{Shape{Batch: 1, Len: 19, Heads: 3, KVHeads: 1, HeadDim: 2}, 0, 0},
}

// TestFlashMatchesReference compares the float32 kernel's output, log-sum-exps and every gradient
// (random upstream gradient) with the float64 reference.
func TestFlashMatchesReference(t *testing.T) {
	withPaths(t, testFlashMatchesReference)
}

func testFlashMatchesReference(t *testing.T) {
	for ci, c := range cases {
		t.Run(name(c.s, c.tile, c.docs), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(ci), 1))
			in := randomCase(r, c.s, c.docs)
			nq := c.s.count(queryRows)
			dout := testutil.Normals(r, nq, 1)
			want := run[float64](t, newReference(t, c.s), in, dout)
			k := newFlash(t, c.s, Options{Tile: c.tile})
			got := run(t, k, to32(in), testutil.Convert[float32](dout))
			testutil.Close(t, "out", got.out, want.out, 2e-6)
			testutil.Close(t, "dQ", got.dq, want.dq, 5e-6)
			testutil.Close(t, "dK", got.dk, want.dk, 5e-6)
			testutil.Close(t, "dV", got.dv, want.dv, 5e-6)
			testutil.Close(t, "LSE", k.LSE(), referenceLSE(in, c.s), 1e-6)
		})
	}
}

// referenceLSE is log Σ_j exp(c·q_i·k_j) over the keys each row sees, in float64.
func referenceLSE(in Inputs[float64], s Shape) []float64 {
	lse := make([]float64, s.Batch*s.Len*s.Heads)
	starts := make([]int32, s.Batch*s.Len)
	if in.Resets != nil {
		docStarts(starts, in.Resets, s.Batch, s.Len)
	}
	hd := s.HeadDim
	for b := range s.Batch {
		for h := range s.Heads {
			g := h / s.Group()
			for i := range s.Len {
				var z float64
				for j := int(starts[b*s.Len+i]); j <= i; j++ {
					var d float64
					for x := range hd {
						d += in.Q[((b*s.Len+i)*s.Heads+h)*hd+x] * in.K[((b*s.Len+j)*s.KVHeads+g)*hd+x]
					}
					z += math.Exp(s.Scale() * d)
				}
				lse[(b*s.Len+i)*s.Heads+h] = math.Log(z)
			}
		}
	}
	return lse
}

// TestFlashWorkersBitwise: every output and gradient is bitwise the same for any worker count
// and GOMAXPROCS.
func TestFlashWorkersBitwise(t *testing.T) {
	withPaths(t, testFlashWorkersBitwise)
}

func testFlashWorkersBitwise(t *testing.T) {
	s := Shape{Batch: 2, Len: 100, Heads: 4, KVHeads: 2, HeadDim: 16}
	r := rand.New(rand.NewPCG(7, 7))
	in := to32(randomCase(r, s, 30))
	nq := s.count(queryRows)
	dout := testutil.Convert[float32](testutil.Normals(r, nq, 1))
	want := run(t, newFlash(t, s, Options{Tile: 16, Workers: 1}), in, dout)
	for _, procs := range []int{1, 2, 3, 8} {
		prev := runtime.GOMAXPROCS(procs)
		for _, w := range []int{0, 2, 5, 64} {
			got := run(t, newFlash(t, s, Options{Tile: 16, Workers: w}), in, dout)
			for _, x := range []struct {
				name      string
				got, want []float32
			}{{"out", got.out, want.out}, {"dQ", got.dq, want.dq}, {"dK", got.dk, want.dk}, {"dV", got.dv, want.dv}} {
				if !slices.Equal(x.got, x.want) {
					t.Errorf("GOMAXPROCS %d, Workers %d: %s differs from Workers 1", procs, w, x.name)
				}
			}
		}
		runtime.GOMAXPROCS(prev)
	}
}

// TestAssemblyPathsAgree: the AVX-512 products round exactly as the AVX2 ones (the same fused
// multiply-adds in the same order), so the two paths give the same bits.
func TestAssemblyPathsAgree(t *testing.T) {
	paths := asmPaths()
	if len(paths) < 2 {
		t.Skipf("this CPU runs %d assembly paths; nothing to compare", len(paths))
	}
	defer useAsm(bestPath())
	s := Shape{Batch: 2, Len: 90, Heads: 4, KVHeads: 2, HeadDim: 64}
	r := rand.New(rand.NewPCG(9, 9))
	in := to32(randomCase(r, s, 25))
	dout := testutil.Convert[float32](testutil.Normals(r, s.count(queryRows), 1))
	var want result[float32]
	for i, p := range paths {
		useAsm(p)
		got := run(t, newFlash(t, s, Options{Tile: 32}), in, dout)
		if i == 0 {
			want = got
			continue
		}
		if !slices.Equal(got.out, want.out) || !slices.Equal(got.dq, want.dq) || !slices.Equal(got.dk, want.dk) || !slices.Equal(got.dv, want.dv) {
			t.Errorf("%s differs from %s", p, paths[0])
		}
	}
}
