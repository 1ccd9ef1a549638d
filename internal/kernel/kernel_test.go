package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// gen draws the inputs of a spec.
type gen func(r *rand.Rand) [][]float64

// normals draws every input of s from N(0, 1).
func normals(s Spec) gen {
	return func(r *rand.Rand) [][]float64 {
		var v [][]float64
		for _, sh := range s.Inputs() {
			v = append(v, testutil.Normals(r, Size(sh), 1))
		}
		return v
	}
}

// loss64 is Σ out·R in float64.
func loss64(out, w []float64) float64 {
	s := 0.0
	for i, o := range out {
		s += o * w[i]
	}
	return s
}

func alloc64(shapes [][]int) [][]float64 {
	d := make([][]float64, len(shapes))
	for i, s := range shapes {
		d[i] = make([]float64, Size(s))
	}
	return d
}

func alloc32(shapes [][]int) [][]float32 {
	d := make([][]float32, len(shapes))
	for i, s := range shapes {
		d[i] = make([]float32, Size(s))
	}
	return d
}

func to32(v [][]float64) [][]float32 {
	r := make([][]float32, len(v))
	for i, x := range v {
		r[i] = testutil.Convert[float32](x)
	}
	return r
}

func to64(v [][]float32) [][]float64 {
	r := make([][]float64, len(v))
	for i, x := range v {
		r[i] = testutil.Convert[float64](x)
	}
	return r
}

// checkFD checks the reference kernel's gradients of loss = Σ out·R, R
// random, against central differences, at most 24 coordinates per input.
func checkFD(t *testing.T, s Spec, in [][]float64, r *rand.Rand, tol float64) {
	t.Helper()
	k, err := Reference{}.New(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, Size(s.Output()))
	w := testutil.Normals(r, len(out), 1)
	din := alloc64(s.Inputs())
	k.Forward(in, out)
	k.Backward(in, w, din)
	const h = 1e-6
	for i := range in {
		coords := r.Perm(len(in[i]))[:min(24, len(in[i]))]
		slices.Sort(coords)
		got, num := make([]float64, len(coords)), make([]float64, len(coords))
		for c, j := range coords {
			x := in[i][j]
			in[i][j] = x + h
			k.Forward(in, out)
			lp := loss64(out, w)
			in[i][j] = x - h
			k.Forward(in, out)
			lm := loss64(out, w)
			in[i][j] = x
			got[c], num[c] = din[i][j], (lp-lm)/(2*h)
		}
		scale := 1.0
		for _, v := range num {
			scale = max(scale, math.Abs(v))
		}
		testutil.CheckErr(t, s.String()+": gradient of input "+string(rune('0'+i))+" vs finite differences (max abs error / max(1, max |fd|))",
			testutil.MaxAbs(got, num)/scale, tol)
	}
}

// runCPU runs the float32 kernel's forward and backward (every gradient
// asked for) on in and returns the output and the gradients.
func runCPU(t *testing.T, k Kernel[[]float32], s Spec, in [][]float32, w []float32) ([]float32, [][]float32) {
	t.Helper()
	out := make([]float32, Size(s.Output()))
	din := alloc32(s.Inputs())
	k.Forward(in, out)
	k.Backward(in, w, din)
	return out, din
}

// checkCPU compares the float32 kernel with the reference on the same
// (float32-rounded) inputs by relative L2 error, and checks that the float32
// results are bitwise the same for GOMAXPROCS 1, 3 and the default, that a
// second backward gives the same gradients, and that a backward asked for
// some gradients only leaves the others untouched.
func checkCPU(t *testing.T, s Spec, in [][]float64, r *rand.Rand, tol float64) {
	t.Helper()
	in = to64(to32(in))
	ref, err := Reference{}.New(s)
	if err != nil {
		t.Fatal(err)
	}
	k, err := CPU{}.New(s)
	if err != nil {
		t.Fatal(err)
	}
	w := testutil.Convert[float64](testutil.Convert[float32](testutil.Normals(r, Size(s.Output()), 1)))
	out64, din64 := make([]float64, len(w)), alloc64(s.Inputs())
	ref.Forward(in, out64)
	ref.Backward(in, w, din64)
	in32, w32 := to32(in), testutil.Convert[float32](w)
	out, din := runCPU(t, k, s, in32, w32)
	testutil.Close(t, s.String()+": output, float32 vs float64", out, out64, tol)
	for i := range din {
		testutil.Close(t, s.String()+": gradient of input "+string(rune('0'+i))+", float32 vs float64", din[i], din64[i], tol)
	}
	for _, procs := range []int{1, 3} {
		old := runtime.GOMAXPROCS(procs)
		k2, _ := CPU{}.New(s)
		o, d := runCPU(t, k2, s, in32, w32)
		runtime.GOMAXPROCS(old)
		if !slices.Equal(o, out) {
			t.Errorf("%s: GOMAXPROCS %d: output differs", s, procs)
		}
		for i := range d {
			if !slices.Equal(d[i], din[i]) {
				t.Errorf("%s: GOMAXPROCS %d: gradient of input %d differs", s, procs, i)
			}
		}
	}
	// A second backward, asking for every other gradient, on the kernel
	// that ran first: the same values, nothing accumulated, nil skipped.
	part := alloc32(s.Inputs())
	for i := range part {
		if i%2 == 1 {
			part[i] = nil
		}
	}
	k.Backward(in32, w32, part)
	for i := range part {
		if part[i] != nil && !slices.Equal(part[i], din[i]) {
			t.Errorf("%s: a second backward gives another gradient of input %d", s, i)
		}
	}
}

// check runs checkFD at one random point and checkCPU at another.
func check(t *testing.T, s Spec, g gen, seed uint64, fdTol, f32Tol float64) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	checkFD(t, s, g(r), r, fdTol)
	checkCPU(t, s, g(r), r, f32Tol)
}

// TestBackwardAdd: for every kernel that accumulates, BackwardAdd with every input it can
// add to gives what was in din plus Backward's gradient, and leaves the inputs it was not
// asked to add to as Backward writes them. The embedding's ids index a table of which
// the LM head fills the gradient first; Linears cover a part of a weight (rows [Lo, Hi)),
// a bias, a residual and a token count cut into chunks of k.
func TestBackwardAdd(t *testing.T) {
	ids, _ := NewIDs(7, 5)
	if err := ids.Set([]int32{4, 0, 4, 2, 1, 1, 3}); err != nil {
		t.Fatal(err)
	}
	for i, s := range []Spec{
		Linear{Rows: 6, In: 5, Out: 9, Lo: 2, Hi: 7, Bias: true, Residual: true},
		Linear{Rows: 1100, In: 24, Out: 40, Lo: 0, Hi: 40},
		RMSNorm{Rows: 40, Dim: 9, Eps: 1e-5},
		Columns{Rows: 300, Width: 9, Lo: 2, Hi: 5},
		Embedding{IDs: ids, Vocab: 5, Dim: 3},
	} {
		r := rand.New(rand.NewPCG(uint64(i), 77))
		k, err := CPU{}.New(s)
		if err != nil {
			t.Fatal(err)
		}
		acc := k.(Accumulator[[]float32])
		in := to32(normals(s)(r))
		out := make([]float32, Size(s.Output()))
		dout := testutil.Convert[float32](testutil.Normals(r, len(out), 1))
		k.Forward(in, out)
		plain := alloc32(s.Inputs())
		k.Backward(in, dout, plain)
		for which := range s.Inputs() {
			if !acc.Accumulates(which) {
				continue
			}
			prior := testutil.Convert[float32](testutil.Normals(r, Size(s.Inputs()[which]), 1))
			din := alloc32(s.Inputs())
			copy(din[which], prior)
			add := make([]bool, len(din))
			add[which] = true
			acc.BackwardAdd(in, dout, din, add)
			want := make([]float64, len(prior))
			for j := range want {
				want[j] = float64(prior[j]) + float64(plain[which][j])
			}
			testutil.Close(t, fmt.Sprintf("%s: input %d added", s, which), din[which], want, 1e-6)
			for o := range din {
				if o != which && !slices.Equal(din[o], plain[o]) {
					t.Errorf("%s: adding to input %d changed the gradient of input %d", s, which, o)
				}
			}
		}
	}
}
