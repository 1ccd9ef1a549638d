package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/testutil"
)

// specCases cover grouped heads, several tiles with a ragged last one, one token, and no rotation.
var specCases = []Spec{
	{Batch: 2, Len: 70, Heads: 4, KVHeads: 2, HeadDim: 8, RopeTheta: 10000},
	{Batch: 1, Len: 9, Heads: 3, KVHeads: 3, HeadDim: 6, RopeTheta: 5e5},
	{Batch: 3, Len: 1, Heads: 2, KVHeads: 1, HeadDim: 4, RopeTheta: 1e6},
	{Batch: 2, Len: 17, Heads: 2, KVHeads: 2, HeadDim: 5},
}

// specRun runs Forward then Backward of a kernel of s on in with upstream dout; out and the three
// input gradients.
func specRun[T float32 | float64](k kernel.Kernel[[]T], s Spec, in [][]T, dout []T) (out []T, din [][]T) {
	out = make([]T, kernel.Size(s.Output()))
	for _, sh := range s.Inputs() {
		din = append(din, make([]T, kernel.Size(sh)))
	}
	k.Forward(in, out)
	k.Backward(in, dout, din)
	return out, din
}

func specInputs(r *rand.Rand, s Spec) [][]float64 {
	var in [][]float64
	for _, sh := range s.Inputs() {
		in = append(in, testutil.Normals(r, kernel.Size(sh), 1.2))
	}
	return in
}

func to32s(x [][]float64) [][]float32 {
	var y [][]float32
	for _, v := range x {
		y = append(y, testutil.Convert[float32](v))
	}
	return y
}

// TestSpecMatchesReference: the float32 kernel against the float64 one, forward and every
// gradient, on each loop path.
func TestSpecMatchesReference(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		for _, s := range specCases {
			r := rand.New(rand.NewPCG(1, uint64(s.Len)))
			in := specInputs(r, s)
			dout := testutil.Normals(r, kernel.Size(s.Output()), 1)
			k32, err := kernel.CPU{}.New(s)
			if err != nil {
				t.Fatal(err)
			}
			k64, err := kernel.Reference{}.New(s)
			if err != nil {
				t.Fatal(err)
			}
			out, din := specRun(k32, s, to32s(in), testutil.Convert[float32](dout))
			wout, wdin := specRun(k64, s, in, dout)
			testutil.Close(t, s.String()+" out", out, wout, 2e-6)
			for i, n := range []string{"dq", "dk", "dv"} {
				testutil.Close(t, s.String()+" "+n, din[i], wdin[i], 1e-5)
			}
		}
	})
}

// TestSpecReferenceFD checks the float64 kernel's gradients against central differences of
// Σ dout·out, with a random upstream gradient.
func TestSpecReferenceFD(t *testing.T) {
	for _, s := range specCases {
		r := rand.New(rand.NewPCG(2, uint64(s.Len)))
		in := specInputs(r, s)
		dout := testutil.Normals(r, kernel.Size(s.Output()), 1)
		k, err := kernel.Reference{}.New(s)
		if err != nil {
			t.Fatal(err)
		}
		_, din := specRun(k, s, in, dout)
		loss := func() float64 {
			out := make([]float64, len(dout))
			k.Forward(in, out)
			var l float64
			for i, v := range out {
				l += v * dout[i]
			}
			return l
		}
		const h = 1e-6
		for i, name := range []string{"q", "k", "v"} {
			for range 6 {
				j := r.IntN(len(in[i]))
				x := in[i][j]
				in[i][j] = x + h
				up := loss()
				in[i][j] = x - h
				down := loss()
				in[i][j] = x
				fd := (up - down) / (2 * h)
				testutil.CheckErr(t, s.String()+" d"+name, math.Abs(fd-din[i][j]), 1e-7*math.Max(1, math.Abs(fd)))
			}
		}
	}
}

// TestSpecDeterministic: bitwise the same results for any GOMAXPROCS, and no allocation once
// warm.
func TestSpecDeterministic(t *testing.T) {
	s := Spec{Batch: 2, Len: 150, Heads: 4, KVHeads: 2, HeadDim: 16, RopeTheta: 10000}
	r := rand.New(rand.NewPCG(3, 3))
	in := to32s(specInputs(r, s))
	dout := testutil.Convert[float32](testutil.Normals(r, kernel.Size(s.Output()), 1))
	run := func(procs int) ([]float32, [][]float32) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		k, err := kernel.CPU{}.New(s)
		if err != nil {
			t.Fatal(err)
		}
		out, din := specRun(k, s, in, dout)
		if n := mallocs(5, func() {
			k.Forward(in, out)
			k.Backward(in, dout, din)
		}); n != 0 {
			t.Errorf("GOMAXPROCS %d: %v allocations per forward and backward", procs, n)
		}
		return out, din
	}
	o1, d1 := run(1)
	o3, d3 := run(3)
	if !slices.Equal(o1, o3) {
		t.Error("output differs between GOMAXPROCS 1 and 3")
	}
	for i := range d1 {
		if !slices.Equal(d1[i], d3[i]) {
			t.Errorf("gradient %d differs between GOMAXPROCS 1 and 3", i)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Spec
		want string
	}{
		{Spec{Batch: 1, Len: 4, Heads: 3, KVHeads: 2, HeadDim: 4}, "does not divide"},
		{Spec{Batch: 0, Len: 4, Heads: 1, KVHeads: 1, HeadDim: 4}, "at least 1"},
		{Spec{Batch: 1, Len: 4, Heads: 1, KVHeads: 1, HeadDim: 5, RopeTheta: 10000}, "even"},
		{Spec{Batch: 1, Len: 4, Heads: 1, KVHeads: 1, HeadDim: 4, RopeTheta: 0.5}, "theta"},
		{Spec{Batch: 1 << 20, Len: 1 << 10, Heads: 8, KVHeads: 8, HeadDim: 64}, "exceeds"},
	} {
		if err := tc.s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.s, err, tc.want)
		}
	}
}

// TestSpecPackedDocuments: a sequence of three packed documents (Resets) gives the outputs and
// gradients of the documents run alone, positions counted from each document's start, in both
// kernels (to an absolute tolerance: a one-token document has dq = dk = 0); the float32 kernel
// matches the float64 one on it.
func TestSpecPackedDocuments(t *testing.T) {
	docs := [][2]int{{0, 3}, {3, 4}, {4, 40}}
	L := docs[len(docs)-1][1]
	one := func(l int) Spec { return Spec{Batch: 1, Len: l, Heads: 4, KVHeads: 2, HeadDim: 8, RopeTheta: 10000} }
	packed := one(L)
	var err error
	if packed.Resets, err = kernel.NewResets(L); err != nil {
		t.Fatal(err)
	}
	flags := make([]uint8, L)
	for _, d := range docs[1:] {
		flags[d[0]] = 1
	}
	packed.Resets.Set(flags)
	r := rand.New(rand.NewPCG(4, 4))
	in := specInputs(r, packed)
	dout := testutil.Normals(r, kernel.Size(packed.Output()), 1)
	check := func(name string, run func(s Spec, in [][]float64, dout []float64) ([]float64, [][]float64), tol float64) ([]float64, [][]float64) {
		out, din := run(packed, in, dout)
		for _, d := range docs {
			cols := []int{len(in[0]) / L, len(in[1]) / L, len(in[2]) / L}
			var sub [][]float64
			for i := range in {
				sub = append(sub, in[i][d[0]*cols[i]:d[1]*cols[i]])
			}
			w := len(out) / L
			o, g := run(one(d[1]-d[0]), sub, dout[d[0]*w:d[1]*w])
			testutil.CloseAbs(t, fmt.Sprint(name, d, ": packed output vs the document's"), out[d[0]*w:d[1]*w], o, tol)
			for i, n := range []string{"dq", "dk", "dv"} {
				testutil.CloseAbs(t, fmt.Sprint(name, d, ": packed ", n, " vs the document's"), din[i][d[0]*cols[i]:d[1]*cols[i]], g[i], tol)
			}
		}
		return out, din
	}
	ref := func(s Spec, in [][]float64, dout []float64) ([]float64, [][]float64) {
		k, err := kernel.Reference{}.New(s)
		if err != nil {
			t.Fatal(err)
		}
		return specRun(k, s, in, dout)
	}
	cpu := func(s Spec, in [][]float64, dout []float64) ([]float64, [][]float64) {
		k, err := kernel.CPU{}.New(s)
		if err != nil {
			t.Fatal(err)
		}
		out, din := specRun(k, s, to32s(in), testutil.Convert[float32](dout))
		var d64 [][]float64
		for _, g := range din {
			d64 = append(d64, testutil.Convert[float64](g))
		}
		return testutil.Convert[float64](out), d64
	}
	wout, wdin := check("reference", ref, 1e-12)
	out, din := check("cpu", cpu, 1e-5)
	testutil.Close(t, "packed: float32 vs float64 output", out, wout, 2e-6)
	for i := range din {
		testutil.Close(t, "packed: float32 vs float64 gradient", din[i], wdin[i], 1e-5)
	}
}
