package attention

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// kernelHeap runs New and Forward, then Backward, at shape s and returns the live heap the kernel
// adds after each: the heap after a GC with the kernel reachable, less the heap with only the
// inputs and outputs.
func kernelHeap(t *testing.T, s Shape) (fwd, bwd uint64, k *Flash) {
	r := rand.New(rand.NewPCG(1, 1))
	in := to32(randomCase(r, s, 0))
	nq, nk := s.count(queryRows), s.count(keyRows)
	out, dout := make([]float32, nq), testutil.Convert[float32](testutil.Normals(r, nq, 1))
	g := Grads[float32]{Q: make([]float32, nq), K: make([]float32, nk), V: make([]float32, nk)}
	var ms runtime.MemStats
	heap := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	k = newFlash(t, s, Options{Workers: 2})
	if err := k.Forward(in, out); err != nil {
		t.Fatal(err)
	}
	fwd = heap() - before
	if err := k.Backward(in, out, dout, g); err != nil {
		t.Fatal(err)
	}
	bwd = heap() - before
	runtime.KeepAlive(in)
	runtime.KeepAlive(g)
	runtime.KeepAlive(out)
	runtime.KeepAlive(dout)
	return fwd, bwd, k
}

// TestSavedMemoryPerToken: what the kernel keeps from Forward for Backward grows by the row
// log-sum-exps only, 4·Heads bytes per token (besides the output itself, Heads·HeadDim floats,
// which the caller holds), and Backward adds its scratch of D_i, another 4·Heads bytes per token:
// nothing of size L×L, and the worker scratch does not grow with L. The live heap is noisy by
// some 10 kB (runtime and test-runner allocations), so the shape has many small heads (half a
// megabyte of log-sum-exps between the two lengths; an L×L buffer per worker would add 130 kB)
// and the check allows 10%.
func TestSavedMemoryPerToken(t *testing.T) {
	s := Shape{Batch: 1, Heads: 1024, KVHeads: 256, HeadDim: 2}
	s.Len = 64
	kernelHeap(t, s) // warm up the parallel loop's helpers
	fwd0, bwd0, k := kernelHeap(t, s)
	if got, want := k.SavedBytes(), 4*s.Batch*s.Len*s.Heads; got != want {
		t.Errorf("SavedBytes = %d, want %d", got, want)
	}
	s.Len = 192
	fwd1, bwd1, _ := kernelHeap(t, s)
	tokens := float64(s.Batch * (192 - 64))
	kept, scratch := (float64(fwd1)-float64(fwd0))/tokens, (float64(bwd1)-float64(bwd0))/tokens
	t.Logf("kept from Forward: %.2f bytes per token (4·Heads = %d; with the output, %d); after Backward: %.2f",
		kept, 4*s.Heads, 4*s.Heads*(s.HeadDim+1), scratch)
	testutil.CheckErr(t, "|kept per token − 4·Heads| / 4·Heads", math.Abs(kept/float64(4*s.Heads)-1), 0.1)
	testutil.CheckErr(t, "|after Backward per token − 8·Heads| / 8·Heads", math.Abs(scratch/float64(8*s.Heads)-1), 0.1)
}

// mallocs counts the heap allocations of f, with f's own helpers running (testing.AllocsPerRun
// would pin GOMAXPROCS to 1): the least average over five rounds of runs, because the runtime
// itself allocates now and then while goroutines park and threads start (an allocation of f
// shows in every round).
func mallocs(runs int, f func()) float64 {
	for range 3 {
		f()
	}
	least := math.Inf(1)
	for range 5 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		for range runs {
			f()
		}
		runtime.ReadMemStats(&b)
		least = min(least, float64(b.Mallocs-a.Mallocs)/float64(runs))
	}
	return least
}

// TestZeroAllocs: once built and warm, Forward, Backward, a decode step and a rotation allocate
// nothing, on several workers, with and without documents.
func TestZeroAllocs(t *testing.T) {
	prev := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(prev)
	s := Shape{Batch: 2, Len: 100, Heads: 4, KVHeads: 2, HeadDim: 16}
	r := rand.New(rand.NewPCG(2, 2))
	nq, nk := s.count(queryRows), s.count(keyRows)
	for _, docs := range []int{0, 10} {
		in := to32(randomCase(r, s, docs))
		k := newFlash(t, s, Options{Tile: 16})
		out, dout := make([]float32, nq), testutil.Convert[float32](testutil.Normals(r, nq, 1))
		g := Grads[float32]{Q: make([]float32, nq), K: make([]float32, nk), V: make([]float32, nk)}
		if n := mallocs(20, func() {
			if err := k.Forward(in, out); err != nil {
				t.Fatal(err)
			}
			if err := k.Backward(in, out, dout, g); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("docs %d: Forward+Backward make %.1f allocations per call", docs, n)
		}
	}
	ds := s
	ds.Len = 3 * DecodeChunk
	dec, err := NewDecoder(ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := to32(randomCase(r, ds, 0))
	q, o := in.Q[:s.Batch*s.Heads*s.HeadDim], make([]float32, s.Batch*s.Heads*s.HeadDim)
	if n := mallocs(20, func() {
		if err := dec.Step(o, q, in.K, in.V, 2*DecodeChunk+5); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decoder.Step makes %.1f allocations per call", n)
	}
	rp := newRope(t, s.HeadDim, s.Len, 10000)
	pos := make([]int32, s.Batch*s.Len)
	Positions(pos, s.Batch, s.Len, nil)
	x := in.Q[:nq]
	if n := mallocs(20, func() {
		if err := rp.Forward(x, x, pos, s.Heads); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Rope.Forward makes %.1f allocations per call", n)
	}
}

// TestErrors: bad shapes and slices are errors naming what is wrong.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		s    Shape
		o    Options
		want string
	}{
		{Shape{Batch: 1, Len: 4, Heads: 3, KVHeads: 2, HeadDim: 8}, Options{}, "does not divide"},
		{Shape{Batch: 0, Len: 4, Heads: 1, KVHeads: 1, HeadDim: 8}, Options{}, "at least 1"},
		{Shape{Batch: 1, Len: 1 << 40, Heads: 1, KVHeads: 1, HeadDim: 1 << 30}, Options{}, "too large"},
		{Shape{Batch: 1, Len: 4, Heads: 1, KVHeads: 1, HeadDim: 8}, Options{Tile: -1}, "Tile"},
		{Shape{Batch: 1, Len: 4, Heads: 1, KVHeads: 1, HeadDim: 8}, Options{Workers: -1}, "Workers"},
	} {
		if _, err := New(c.s, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v, %+v) = %v, want an error about %q", c.s, c.o, err, c.want)
		}
	}
	s := Shape{Batch: 1, Len: 4, Heads: 2, KVHeads: 1, HeadDim: 2}
	k := newFlash(t, s, Options{})
	q, kv := make([]float32, 16), make([]float32, 8)
	if err := k.Backward(Inputs[float32]{Q: q, K: kv, V: kv}, q, q, Grads[float32]{}); err == nil || !strings.Contains(err.Error(), "before Forward") {
		t.Errorf("Backward before Forward = %v", err)
	}
	for _, c := range []struct {
		in   Inputs[float32]
		out  []float32
		want string
	}{
		{Inputs[float32]{Q: q[:15], K: kv, V: kv}, q, "Inputs.Q has length 15, want 16"},
		{Inputs[float32]{Q: q, K: q, V: kv}, q, "Inputs.K has length 16, want 8"},
		{Inputs[float32]{Q: q, K: kv, V: nil}, q, "Inputs.V"},
		{Inputs[float32]{Q: q, K: kv, V: kv, Resets: make([]uint8, 3)}, q, "Resets"},
		{Inputs[float32]{Q: q, K: kv, V: kv}, kv, "out"},
	} {
		if err := k.Forward(c.in, c.out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Forward = %v, want an error about %q", err, c.want)
		}
	}
	if err := k.Forward(Inputs[float32]{Q: q, K: kv, V: kv}, q); err != nil {
		t.Fatal(err)
	}
	if err := k.Backward(Inputs[float32]{Q: q, K: kv, V: kv}, q, q, Grads[float32]{K: q}); err == nil || !strings.Contains(err.Error(), "Grads.K") {
		t.Errorf("Backward with a wrong Grads.K = %v", err)
	}
	dec, err := NewDecoder(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 5} {
		if err := dec.Step(make([]float32, 4), make([]float32, 4), kv, kv, n); err == nil || !strings.Contains(err.Error(), "cached positions") {
			t.Errorf("Step(n = %d) = %v", n, err)
		}
	}
	if err := dec.Step(make([]float32, 4), make([]float32, 3), kv, kv, 2); err == nil || !strings.Contains(err.Error(), "q has length 3") {
		t.Errorf("Step with a short q = %v", err)
	}
}
