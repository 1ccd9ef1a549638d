package scan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// loss is Σ out·dout + Σ last·dlast computed by the reference.
func loss(t *testing.T, k *Reference, in Inputs[float64], dout, dlast []float64) float64 {
	t.Helper()
	s := k.Shape()
	out := make([]float64, s.Batch*s.Len*s.Channels)
	last := make([]float64, s.Batch*s.Channels*s.State)
	if err := k.Forward(in, out, last); err != nil {
		t.Fatal(err)
	}
	l := 0.0
	for i, v := range out {
		l += v * dout[i]
	}
	for i, v := range last {
		l += v * dlast[i]
	}
	return l
}

// TestFiniteDifferences checks every gradient of the float64 reference, element by element,
// against central differences of Σ out·dout + Σ last·dlast (random dout and dlast). Absent D,
// DeltaBias and H0 are differentiated at zero.
func TestFiniteDifferences(t *testing.T) {
	shapes := []Shape{{1, 1, 2, 3}, {2, 5, 3, 4}, {1, 6, 2, 1}, {2, 3, 1, 2}}
	configs := []config{allOn, {}, {Z: true, Softplus: true}, {D: true, Bias: true}, packed, {Resets: true, H0: true}}
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		for _, c := range configs {
			t.Run(fmt.Sprintf("%v/%+v", s, c), func(t *testing.T) {
				in := randomInputs(r, s, c)
				dout := normals(r, s.Batch*s.Len*s.Channels, 1)
				dlast := normals(r, s.Batch*s.Channels*s.State, 1)
				k, err := NewReference(s, Options{Softplus: c.Softplus})
				if err != nil {
					t.Fatal(err)
				}
				g := runKernel(t, k, in, dout, dlast)
				if in.D == nil {
					in.D = make([]float64, s.Channels)
				}
				if in.DeltaBias == nil {
					in.DeltaBias = make([]float64, s.Channels)
				}
				if in.H0 == nil {
					in.H0 = make([]float64, s.Batch*s.Channels*s.State)
				}
				for _, p := range []struct {
					name string
					x    []float64
					g    []float64
				}{{"U", in.U, g.gU}, {"Delta", in.Delta, g.gDelta}, {"A", in.A, g.gA}, {"B", in.B, g.gB},
					{"C", in.C, g.gC}, {"D", in.D, g.gD}, {"Z", in.Z, g.gZ}, {"DeltaBias", in.DeltaBias, g.gDeltaBias},
					{"H0", in.H0, g.gH0}} {
					if p.x == nil {
						continue
					}
					for i := range p.x {
						const eps = 1e-5
						x0 := p.x[i]
						p.x[i] = x0 + eps
						lp := loss(t, k, in, dout, dlast)
						p.x[i] = x0 - eps
						lm := loss(t, k, in, dout, dlast)
						p.x[i] = x0
						fd := (lp - lm) / (2 * eps)
						testutil.CheckErr(t, fmt.Sprintf("d%s[%d] = %.10g, finite difference %.10g: error/(1+|fd|)",
							p.name, i, p.g[i], fd), math.Abs(fd-p.g[i])/(1+math.Abs(fd)), 1e-6)
					}
				}
			})
		}
	}
}

// randomCase draws inputs and upstream gradients (dout and dlast) for a shape.
func randomCase(r *rand.Rand, s Shape, c config) (Inputs[float64], []float64, []float64) {
	return randomInputs(r, s, c), normals(r, s.Batch*s.Len*s.Channels, 1), normals(r, s.Batch*s.Channels*s.State, 1)
}

// TestFastMatchesReference compares the float32 kernel with the float64 reference on random
// shapes, chunk lengths that do and do not divide L, both modes and every optional input.
func TestFastMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		s     Shape
		chunk int
	}{
		{Shape{1, 1, 1, 1}, 0}, {Shape{2, 7, 3, 1}, 3}, {Shape{1, 33, 5, 4}, 8}, {Shape{3, 50, 40, 16}, 16},
		{Shape{1, 200, 3, 5}, 8}, {Shape{2, 65, 70, 3}, 64}, {Shape{1, 130, 1, 2}, 0}, {Shape{2, 20, 150, 8}, 7},
		{Shape{3, 1, 70, 16}, 0}, {Shape{2, 1, 5, 3}, 0}, // one step: the decoder's case
	}
	for _, tc := range cases {
		for _, c := range []config{allOn, {}, {Z: true, H0: true}, packed} {
			t.Run(fmt.Sprintf("%v/chunk%d/%+v", tc.s, tc.chunk, c), func(t *testing.T) {
				in, dout, dlast := randomCase(r, tc.s, c)
				want := reference(t, tc.s, c.Softplus, in, dout, dlast)
				got := fast(t, tc.s, Options{Softplus: c.Softplus, Chunk: tc.chunk}, in, dout, dlast)
				t.Logf("worst rel L2 %.3g", compareResults(t, "fast vs reference", got, want, 1e-4))
			})
		}
	}
}

// TestChunkInvariance: chunk lengths 1, 3, 64 and L give the same results.
func TestChunkInvariance(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range []Shape{{2, 100, 35, 4}, {1, 77, 3, 2}} {
		in, dout, dlast := randomCase(r, s, allOn)
		want := fast(t, s, Options{Softplus: true, Chunk: s.Len}, in, dout, dlast)
		for _, chunk := range []int{1, 3, 64} {
			got := fast(t, s, Options{Softplus: true, Chunk: chunk}, in, dout, dlast)
			compareResults(t, fmt.Sprintf("%v chunk %d vs %d", s, chunk, s.Len), got, want, 1e-5)
		}
	}
}

// timeSlice returns steps [t0, t1) of a (batch, L, width) tensor.
func timeSlice(x []float64, batch, L, width, t0, t1 int) []float64 {
	var y []float64
	for b := range batch {
		y = append(y, x[(b*L+t0)*width:(b*L+t1)*width]...)
	}
	return y
}

// timeJoin concatenates two (batch, ·, width) tensors along time.
func timeJoin(x, y []float64, batch, width int) []float64 {
	lx, ly := len(x)/(batch*width), len(y)/(batch*width)
	var z []float64
	for b := range batch {
		z = append(z, x[b*lx*width:(b+1)*lx*width]...)
		z = append(z, y[b*ly*width:(b+1)*ly*width]...)
	}
	return z
}

func sum(x, y []float64) []float64 {
	z := make([]float64, len(x))
	for i := range x {
		z[i] = x[i] + y[i]
	}
	return z
}

// TestSplitSequence: scanning [0, L) equals scanning [0, k) and then [k, L) from the returned
// state, forward and backward (the first part's dlast is the second part's dH0).
func TestSplitSequence(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	s := Shape{2, 45, 5, 3}
	in, dout, dlast := randomCase(r, s, allOn)
	for _, k := range []int{1, 17, 44} {
		s1, s2 := s, s
		s1.Len, s2.Len = k, s.Len-k
		part := func(in Inputs[float64], t0, t1 int) Inputs[float64] {
			p := in
			p.U = timeSlice(in.U, s.Batch, s.Len, s.Channels, t0, t1)
			p.Delta = timeSlice(in.Delta, s.Batch, s.Len, s.Channels, t0, t1)
			p.Z = timeSlice(in.Z, s.Batch, s.Len, s.Channels, t0, t1)
			p.B = timeSlice(in.B, s.Batch, s.Len, s.State, t0, t1)
			p.C = timeSlice(in.C, s.Batch, s.Len, s.State, t0, t1)
			return p
		}
		in1, in2 := part(in, 0, k), part(in, k, s.Len)
		dout1 := timeSlice(dout, s.Batch, s.Len, s.Channels, 0, k)
		dout2 := timeSlice(dout, s.Batch, s.Len, s.Channels, k, s.Len)
		run := func(label string, tol float64, kernel func(Shape, Inputs[float64], []float64, []float64) result) {
			whole := kernel(s, in, dout, dlast)
			first := kernel(s1, in1, dout1, make([]float64, len(dlast))) // forward only matters here
			in2.H0 = first.last
			second := kernel(s2, in2, dout2, dlast)
			first = kernel(s1, in1, dout1, second.gH0)
			joined := result{
				out: timeJoin(first.out, second.out, s.Batch, s.Channels), last: second.last,
				gU:     timeJoin(first.gU, second.gU, s.Batch, s.Channels),
				gDelta: timeJoin(first.gDelta, second.gDelta, s.Batch, s.Channels),
				gZ:     timeJoin(first.gZ, second.gZ, s.Batch, s.Channels),
				gB:     timeJoin(first.gB, second.gB, s.Batch, s.State),
				gC:     timeJoin(first.gC, second.gC, s.Batch, s.State),
				gA:     sum(first.gA, second.gA), gD: sum(first.gD, second.gD),
				gDeltaBias: sum(first.gDeltaBias, second.gDeltaBias), gH0: first.gH0,
			}
			compareResults(t, fmt.Sprintf("%s split at %d", label, k), joined, whole, tol)
		}
		run("reference", 1e-12, func(s Shape, in Inputs[float64], dout, dlast []float64) result {
			return reference(t, s, true, in, dout, dlast)
		})
		run("fast", 1e-5, func(s Shape, in Inputs[float64], dout, dlast []float64) result {
			return fast(t, s, Options{Softplus: true, Chunk: 8}, in, dout, dlast)
		})
	}
}

// TestZeroDelta: with Δ = 0 the state never moves from zero and y = D·u.
func TestZeroDelta(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	s := Shape{2, 20, 6, 4}
	in := randomInputs(r, s, config{D: true})
	clear(in.Delta)
	want := make([]float64, len(in.U))
	for i, u := range in.U {
		want[i] = in.D[i%s.Channels] * u
	}
	dout := normals(r, len(in.U), 1)
	got := reference(t, s, false, in, dout, nil)
	testutil.CloseAbs(t, "reference: out vs D·u", got.out, want, 0)
	got32 := fast(t, s, Options{Chunk: 7}, in, dout, nil)
	want32 := make([]float64, len(in.U))
	for i, u := range in.U {
		want32[i] = float64(float32(in.D[i%s.Channels]) * float32(u))
	}
	testutil.CloseAbs(t, "fast: out vs D·u", got32.out, want32, 0)
	testutil.CloseAbs(t, "reference: last state vs 0", got.last, make([]float64, len(got.last)), 0)
	testutil.CloseAbs(t, "fast: last state vs 0", got32.last, make([]float64, len(got32.last)), 0)
}

// TestCombineAssociative: (x∘y)∘z = x∘(y∘z) for the scan operator on random triples, and
// folding it over a sequence gives the recurrence h_t = a_t·h_{t−1} + b_t.
func TestCombineAssociative(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 1000 {
		a1, b1, a2, b2, a3, b3 := r.Float64(), r.NormFloat64(), r.Float64(), r.NormFloat64(), r.Float64(), r.NormFloat64()
		la, lb := combine(a1, b1, a2, b2)
		la, lb = combine(la, lb, a3, b3)
		ra, rb := combine(a2, b2, a3, b3)
		ra, rb = combine(a1, b1, ra, rb)
		what := fmt.Sprintf("(x∘y)∘z = (%v, %v), x∘(y∘z) = (%v, %v)", la, lb, ra, rb)
		testutil.CheckErr(t, what+": a", math.Abs(la-ra), 1e-15)
		testutil.CheckErr(t, what+": b, relative to 1+|b|", math.Abs(lb-rb)/(1+math.Abs(lb)), 1e-14)
	}
	h, prod, pa, pb := 0.5, 1.0, 1.0, 0.5
	for range 50 {
		a, b := r.Float64(), r.NormFloat64()
		h = a*h + b
		prod *= a
		pa, pb = combine(pa, pb, a, b)
	}
	testutil.CheckErr(t, fmt.Sprintf("fold gives %v, recurrence %v", pb, h), math.Abs(pb-h), 1e-12)
	testutil.CheckErr(t, fmt.Sprintf("fold's a %v, product of the a's %v", pa, prod), math.Abs(pa-prod), 0)
}

// guarded returns a slice of n elements in the middle of a NaN-filled one, and a check that the
// NaN bands around it are intact.
func guarded(t *testing.T, name string, n int) ([]float32, func()) {
	const band = 37
	full := make([]float32, n+2*band)
	for i := range full {
		full[i] = float32(math.NaN())
	}
	return full[band : band+n : band+n], func() {
		t.Helper()
		for i, v := range full {
			if i >= band && i < band+n {
				if v != v {
					t.Errorf("%s[%d] is NaN: not written", name, i-band)
				}
				continue
			}
			if v == v {
				t.Fatalf("%s: guard element %d overwritten with %v", name, i-band, v)
			}
		}
	}
}

// TestGuardBands: outputs and gradients surrounded by NaN: every element inside is written,
// nothing outside is, on every path.
func TestGuardBands(t *testing.T) { onPaths(t, guardBands) }

func guardBands(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct {
		s     Shape
		chunk int
	}{{Shape{2, 31, 137, 3}, 8}, {Shape{1, 50, 3, 4}, 4}, {Shape{1, 33, 70, 16}, 5}, {Shape{2, 19, 40, 32}, 4}} {
		s := tc.s
		in := toF32(randomInputs(r, s, allOn))
		k, err := New(s, Options{Softplus: true, Chunk: tc.chunk})
		if err != nil {
			t.Fatal(err)
		}
		tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Batch*s.Channels*s.State
		var checks []func()
		alloc := func(name string, n int) []float32 {
			x, c := guarded(t, name, n)
			checks = append(checks, c)
			return x
		}
		out, last := alloc("out", tok), alloc("last", st)
		if err := k.Forward(in, out, last); err != nil {
			t.Fatal(err)
		}
		g := Grads[float32]{U: alloc("dU", tok), Delta: alloc("dDelta", tok), A: alloc("dA", s.Channels*s.State),
			B: alloc("dB", rows), C: alloc("dC", rows), D: alloc("dD", s.Channels), Z: alloc("dZ", tok),
			DeltaBias: alloc("dDeltaBias", s.Channels), H0: alloc("dH0", st)}
		if err := k.Backward(in, f32(normals(r, tok, 1)), f32(normals(r, st, 1)), g); err != nil {
			t.Fatal(err)
		}
		for _, c := range checks {
			c()
		}
	}
}

// TestWorkersBitwise: every worker count and GOMAXPROCS give bit-identical results, in channel
// and in time mode, on every path.
func TestWorkersBitwise(t *testing.T) { onPaths(t, workersBitwise) }

func workersBitwise(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for i, s := range []Shape{{2, 70, 80, 4}, {1, 300, 5, 3}, {2, 40, 70, 16}, {1, 300, 5, 8}, {2, 40, 70, 16}, {1, 300, 5, 8}} {
		c := allOn
		if i >= 4 {
			c = packed
		}
		in, dout, dlast := randomCase(r, s, c)
		want := fast(t, s, Options{Softplus: true, Chunk: 16, Workers: 1}, in, dout, dlast)
		for _, w := range []int{2, 3, 7} {
			sameBits(t, fmt.Sprintf("%v workers %d", s, w), fast(t, s, Options{Softplus: true, Chunk: 16, Workers: w}, in, dout, dlast), want)
		}
		for _, p := range []int{1, 2, 5} {
			runtime.GOMAXPROCS(p)
			sameBits(t, fmt.Sprintf("%v GOMAXPROCS %d", s, p), fast(t, s, Options{Softplus: true, Chunk: 16}, in, dout, dlast), want)
		}
	}
}

// TestBlocks: channel blocks are 64 channels, halved down to 16 while a shape gives fewer than
// 32 (batch, block) items; the backward's windows change no bit of any result.
func TestBlocks(t *testing.T) {
	for _, tc := range []struct {
		s   Shape
		blk int
	}{{Shape{8, 512, 512, 16}, 64}, {Shape{1, 512, 512, 16}, 16}, {Shape{2, 512, 512, 16}, 32},
		{Shape{4, 512, 512, 16}, 64}, {Shape{1, 10, 1536, 16}, 32}, {Shape{16, 10, 1536, 16}, 64}, {Shape{1, 10, 5, 16}, 5}} {
		k, err := New(tc.s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if k.blk != tc.blk {
			t.Errorf("%v: blocks of %d channels, want %d", tc.s, k.blk, tc.blk)
		}
	}
	r := rand.New(rand.NewPCG(49, 50))
	for _, s := range []Shape{{2, 100, 40, 16}, {3, 77, 37, 4}} {
		in, dout, dlast := randomCase(r, s, packed)
		o := Options{Softplus: true, Chunk: 8}
		want := fast(t, s, o, in, dout, dlast)
		for _, win := range []int{1, 3, 5} {
			k, err := New(s, o)
			if err != nil {
				t.Fatal(err)
			}
			k.setWindow(win)
			sameBits(t, fmt.Sprintf("%v window %d", s, win), runKernel(t, k, toF32(in), f32(dout), f32(dlast)), want)
		}
	}
}

// TestTimeMode: the parallel-in-time mode is chosen for one long sequence with few channels and
// agrees with channel mode and with the reference.
func TestTimeMode(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	s := Shape{1, 3000, 4, 16}
	k, err := New(s, Options{Softplus: true, Chunk: 16})
	if err != nil {
		t.Fatal(err)
	}
	if !k.timeMode || k.nSeg < 2 {
		t.Fatalf("shape %v: time mode %v with %d segments, want time mode", s, k.timeMode, k.nSeg)
	}
	in, dout, dlast := randomCase(r, s, allOn)
	timed := runKernel(t, k, toF32(in), f32(dout), f32(dlast))
	k.setSplit(k.nChunks, 1)
	sequential := runKernel(t, k, toF32(in), f32(dout), f32(dlast))
	compareResults(t, "time vs channel mode", timed, sequential, 1e-5)
	compareResults(t, "time mode vs reference", timed, reference(t, s, true, in, dout, dlast), 1e-4)
	for _, s := range []Shape{{2, 3000, 4, 16}, {1, 3000, 65, 16}} {
		if k, _ := New(s, Options{Chunk: 16}); k.timeMode {
			t.Errorf("%v: time mode chosen, want channel mode", s)
		}
	}
	if k, _ := New(Shape{1, 3000, 64, 16}, Options{Chunk: 16}); !k.timeMode {
		t.Errorf("batch 1, 64 channels: channel mode chosen, want time mode")
	}
}

// TestSavedBytes: what Forward keeps for Backward is one state per chunk.
func TestSavedBytes(t *testing.T) {
	for _, tc := range []struct {
		s     Shape
		chunk int
	}{{Shape{2, 1000, 3, 16}, 64}, {Shape{1, 4096, 4, 16}, 0}, {Shape{3, 10, 70, 2}, 100}} {
		k, err := New(tc.s, Options{Chunk: tc.chunk})
		if err != nil {
			t.Fatal(err)
		}
		chunk := tc.chunk
		if chunk == 0 {
			chunk = DefaultChunk
		}
		chunks := (tc.s.Len + chunk - 1) / chunk
		if want := 4 * tc.s.Batch * tc.s.Channels * tc.s.State * chunks; k.SavedBytes() != want {
			t.Errorf("%v chunk %d: SavedBytes %d, want %d", tc.s, tc.chunk, k.SavedBytes(), want)
		}
	}
}

// TestNoAllocations: after the first call Forward and Backward allocate nothing, on every path.
func TestNoAllocations(t *testing.T) { onPaths(t, noAllocations) }

func noAllocations(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for _, s := range []Shape{{2, 64, 40, 4}, {1, 400, 3, 4}, {2, 64, 40, 16}} {
		k, err := New(s, Options{Softplus: true, Chunk: 16, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		in := toF32(randomInputs(r, s, packed))
		out := make([]float32, s.Batch*s.Len*s.Channels)
		dout := f32(normals(r, len(out), 1))
		g := newGrads[float32](s, true)
		step := func() {
			if err := k.Forward(in, out, nil); err != nil {
				t.Fatal(err)
			}
			if err := k.Backward(in, dout, nil, g); err != nil {
				t.Fatal(err)
			}
		}
		step()
		if a := testing.AllocsPerRun(5, step); a != 0 {
			t.Errorf("%v: %v allocations per forward+backward", s, a)
		}
	}
}

// TestErrors: bad shapes, options and slices give errors, never panics.
func TestErrors(t *testing.T) {
	for _, s := range []Shape{{0, 1, 1, 1}, {1, -1, 1, 1}, {1, 1, 1, 0}, {1 << 40, 1 << 20, 1 << 10, 16}} {
		if _, err := New(s, Options{}); err == nil {
			t.Errorf("New(%v) accepted", s)
		}
		if _, err := NewReference(s, Options{}); err == nil {
			t.Errorf("NewReference(%v) accepted", s)
		}
	}
	s := Shape{2, 5, 3, 4}
	for _, o := range []Options{{Chunk: -1}, {Workers: -2}} {
		if _, err := New(s, o); err == nil {
			t.Errorf("New with %+v accepted", o)
		}
	}
	k, err := New(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(21, 22))
	in := toF32(randomInputs(r, s, config{D: true}))
	out := make([]float32, s.Batch*s.Len*s.Channels)
	dout := make([]float32, len(out))
	if err := k.Backward(in, dout, nil, Grads[float32]{}); err == nil {
		t.Error("Backward before Forward accepted")
	}
	short := in
	short.B = short.B[1:]
	for name, err := range map[string]error{
		"short B":          k.Forward(short, out, nil),
		"long Resets":      k.Forward(Inputs[float32]{U: in.U, Delta: in.Delta, A: in.A, B: in.B, C: in.C, Resets: make([]uint8, 11)}, out, nil),
		"long D":           k.Forward(Inputs[float32]{U: in.U, Delta: in.Delta, A: in.A, B: in.B, C: in.C, D: make([]float32, 4)}, out, nil),
		"nil U":            k.Forward(Inputs[float32]{Delta: in.Delta, A: in.A, B: in.B, C: in.C}, out, nil),
		"short out":        k.Forward(in, out[:3], nil),
		"bad last":         k.Forward(in, out, make([]float32, 5)),
		"grad Z without Z": k.Backward(in, dout, nil, Grads[float32]{Z: make([]float32, len(out))}),
		"short dout":       k.Backward(in, dout[1:], nil, Grads[float32]{}),
		"bad dA":           k.Backward(in, dout, nil, Grads[float32]{A: make([]float32, 1)}),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
