package kernel

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// withResets returns a holder for batch·length flags set at the given steps
// of every sequence.
func withResets(t *testing.T, batch, length int, starts ...int) *Resets {
	t.Helper()
	r, err := NewResets(batch * length)
	if err != nil {
		t.Fatal(err)
	}
	flags := make([]uint8, batch*length)
	for b := range batch {
		for _, s := range starts {
			flags[b*length+(s+b)%length] = 1 // each sequence cut elsewhere
		}
	}
	if err := r.Set(flags); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestConv1dResets: with document starts the float32 kernel matches the
// reference, and the reference its finite differences, on shapes where
// documents are shorter than, as long as and longer than the width, start at
// step 0 (which hides the state) and follow each other.
func TestConv1dResets(t *testing.T) {
	for i, c := range []struct {
		s      Conv1d
		starts []int
	}{
		{Conv1d{Batch: 2, Len: 9, Channels: 3, Width: 4, Bias: true, SiLU: true}, []int{2, 3, 7}},
		{Conv1d{Batch: 1, Len: 150, Channels: 5, Width: 4, Bias: true, SiLU: true}, []int{1, 63, 64, 66, 130}}, // across pieces
		{Conv1d{Batch: 3, Len: 6, Channels: 2, Width: 3, SiLU: true, State: true}, []int{0, 4}},
		{Conv1d{Batch: 2, Len: 8, Channels: 4, Width: 4, Bias: true, State: true}, []int{2, 5}},
		{Conv1d{Batch: 2, Len: 40, Channels: 45, Width: 2, Bias: true, SiLU: true}, []int{5, 6, 7, 20}},
	} {
		c.s.Resets = withResets(t, c.s.Batch, c.s.Len, c.starts...)
		check(t, c.s, normals(c.s), uint64(200+i), 1e-7, 1e-5)
	}
}

// TestScanResets: the Scan spec hands its document starts to the scan.
func TestScanResets(t *testing.T) {
	for i, c := range []struct {
		s      Scan
		starts []int
	}{
		{Scan{Batch: 2, Len: 9, Channels: 3, State: 4, Softplus: true, Chunk: 2, D: true, Z: true, DeltaBias: true}, []int{1, 4, 5}},
		{Scan{Batch: 1, Len: 70, Channels: 8, State: 4, Softplus: true, Chunk: 16, D: true, Z: true, DeltaBias: true}, []int{16, 40}},
	} {
		c.s.Resets = withResets(t, c.s.Batch, c.s.Len, c.starts...)
		check(t, c.s, scanGen(c.s), uint64(210+i), 1e-6, 1e-5)
	}
}

// packedRun runs spec s (with s.Resets set) and the same spec for each
// document alone (resets nil, Batch 1, Len the document's length), and
// compares outputs and every input gradient: inputs and gradients of the
// token rows are the documents' concatenation, the others their sum.
func packedRun[T float32 | float64](t *testing.T, name string, newKernel func(Spec) (Kernel[[]T], error),
	s Spec, one func(length int) Spec, tokenInputs []bool, docs [][2]int, in [][]T, dout []T, tol float64) {
	t.Helper()
	k, err := newKernel(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]T, Size(s.Output()))
	din := make([][]T, len(in))
	for i := range in {
		din[i] = make([]T, len(in[i]))
	}
	k.Forward(in, out)
	k.Backward(in, dout, din)
	rows := len(out) / Size(s.Output()[1:])
	ch := len(out) / rows
	wantOut := make([]T, len(out))
	wantIn := make([][]T, len(in))
	for i := range in {
		wantIn[i] = make([]T, len(in[i]))
	}
	for _, d := range docs {
		sd := one(d[1] - d[0])
		kd, err := newKernel(sd)
		if err != nil {
			t.Fatal(err)
		}
		sub := make([][]T, len(in))
		for i := range in {
			sub[i] = in[i]
			if tokenInputs[i] {
				w := len(in[i]) / rows
				sub[i] = in[i][d[0]*w : d[1]*w]
			}
		}
		o := make([]T, (d[1]-d[0])*ch)
		g := make([][]T, len(in))
		for i := range in {
			g[i] = make([]T, len(sub[i]))
		}
		kd.Forward(sub, o)
		kd.Backward(sub, dout[d[0]*ch:d[1]*ch], g)
		copy(wantOut[d[0]*ch:], o)
		for i := range in {
			if tokenInputs[i] {
				copy(wantIn[i][d[0]*len(g[i])/(d[1]-d[0]):], g[i])
				continue
			}
			for j, v := range g[i] {
				wantIn[i][j] += v
			}
		}
	}
	testutil.Close(t, name+": packed output vs the documents alone", out, wantOut, tol)
	for i := range in {
		testutil.Close(t, name+": packed gradient of input "+string(rune('0'+i))+" vs the documents' gradients", din[i], wantIn[i], tol)
	}
}

// TestPackedEqualsDocuments: one sequence holding three documents gives the
// outputs and gradients of the three run apart, for the conv (documents
// shorter and longer than its width) and the scan, on both backends.
func TestPackedEqualsDocuments(t *testing.T) {
	docs := [][2]int{{0, 2}, {2, 11}, {11, 80}}
	L := docs[len(docs)-1][1]
	r := rand.New(rand.NewPCG(7, 8))
	conv := func(l int) Conv1d { return Conv1d{Batch: 1, Len: l, Channels: 6, Width: 4, Bias: true, SiLU: true} }
	sc := func(l int) Scan {
		return Scan{Batch: 1, Len: l, Channels: 5, State: 3, Softplus: true, Chunk: 8, D: true, Z: true, DeltaBias: true}
	}
	packedConv, packedScan := conv(L), sc(L)
	packedConv.Resets = withResets(t, 1, L, 2, 11)
	packedScan.Resets = withResets(t, 1, L, 2, 11)
	for _, c := range []struct {
		name   string
		s      Spec
		one    func(int) Spec
		tokens []bool
		g      gen
	}{
		{"conv", packedConv, func(l int) Spec { return conv(l) }, []bool{true, false, false}, normals(packedConv)},
		{"scan", packedScan, func(l int) Spec { return sc(l) }, []bool{true, true, false, true, true, false, true, false}, scanGen(packedScan)},
	} {
		in := c.g(r)
		dout := testutil.Normals(r, Size(c.s.Output()), 1)
		packedRun(t, c.name+" reference", Reference{}.New, c.s, c.one, c.tokens, docs, in, dout, 1e-12)
		packedRun(t, c.name+" cpu", CPU{}.New, c.s, c.one, c.tokens, docs, to32(in), testutil.Convert[float32](dout), 1e-5)
	}
}

// TestResetsHeld: the flags are copied at the forward, so a Set before the
// backward does not change it; Set(nil) clears them.
func TestResetsHeld(t *testing.T) {
	s := Conv1d{Batch: 1, Len: 12, Channels: 3, Width: 4, SiLU: true}
	plain := s
	s.Resets = withResets(t, 1, 12, 5)
	r := rand.New(rand.NewPCG(3, 4))
	in := to32(normals(s)(r))
	dout := testutil.Convert[float32](testutil.Normals(r, Size(s.Output()), 1))
	grads := func(s Conv1d, reset func()) ([]float32, [][]float32) {
		k, _ := CPU{}.New(s)
		out := make([]float32, Size(s.Output()))
		din := alloc32(s.Inputs())
		k.Forward(in, out)
		if reset != nil {
			reset()
		}
		k.Backward(in, dout, din)
		return out, din
	}
	wantOut, want := grads(s, nil)
	_, got := grads(s, func() { s.Resets.Set(nil) })
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("gradient of input %d changed with a Set between forward and backward", i)
		}
	}
	// Now cleared: the spec computes what a spec without resets does.
	clearedOut, _ := grads(s, nil)
	plainOut, _ := grads(plain, nil)
	if !slices.Equal(clearedOut, plainOut) || slices.Equal(clearedOut, wantOut) {
		t.Error("Set(nil) did not clear the document starts")
	}
}

func TestResetsErrors(t *testing.T) {
	r, _ := NewResets(6)
	for _, c := range []struct {
		err  error
		want string
	}{
		{r.Set([]uint8{1, 0}), "got 2 flags, want 6"},
		{(*Resets)(nil).Set(nil), "nil *Resets"},
		{Conv1d{Batch: 2, Len: 4, Channels: 1, Width: 2, Resets: r}.Validate(), "resets hold 6 flags, want batch·len = 2·4"},
		{Scan{Batch: 1, Len: 5, Channels: 1, State: 1, Resets: r}.Validate(), "resets hold 6 flags"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", c.err, c.want)
		}
	}
	if _, err := NewResets(0); err == nil {
		t.Error("NewResets(0): no error")
	}
}
