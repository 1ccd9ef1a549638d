package scan

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// docs returns the documents of row b of a packed case as step ranges [t0, t1).
func docs(in Inputs[float64], s Shape, b int) [][2]int {
	var d [][2]int
	t0 := 0
	for t := 1; t < s.Len; t++ {
		if in.Resets[b*s.Len+t] != 0 {
			d = append(d, [2]int{t0, t})
			t0 = t
		}
	}
	return append(d, [2]int{t0, s.Len})
}

// runner runs forward and backward of some kernel on a case given in float64.
type runner func(s Shape, in Inputs[float64], dout, dlast []float64) result

// separately runs every document of a packed case as a sequence of its own and assembles the
// results as the packed case should give them: outputs and per-step gradients in place, the
// parameters' gradients summed over the documents, H0 (and its gradient) belonging to the first
// document of a row unless a document starts at step 0, dlast (and last) to the last.
func separately(run runner, s Shape, in Inputs[float64], dout, dlast []float64) result {
	d, N, L := s.Channels, s.State, s.Len
	tok, rows, st := s.Batch*L*d, s.Batch*L*N, s.Batch*d*N
	z := func(n int) []float64 { return make([]float64, n) }
	all := result{out: z(tok), last: z(st), gU: z(tok), gDelta: z(tok), gA: z(d * N), gB: z(rows), gC: z(rows),
		gD: z(d), gZ: z(tok), gDeltaBias: z(d), gH0: z(st)}
	for b := range s.Batch {
		ds := docs(in, s, b)
		for i, doc := range ds {
			t0, t1 := doc[0], doc[1]
			one := Shape{1, t1 - t0, d, N}
			tokens := func(x []float64) []float64 { return x[(b*L+t0)*d : (b*L+t1)*d] }
			states := func(x []float64) []float64 { return x[(b*L+t0)*N : (b*L+t1)*N] }
			p := Inputs[float64]{U: tokens(in.U), Delta: tokens(in.Delta), A: in.A, B: states(in.B), C: states(in.C),
				D: in.D, Z: tokens(in.Z), DeltaBias: in.DeltaBias}
			fromH0 := i == 0 && in.Resets[b*L] == 0
			if fromH0 {
				p.H0 = in.H0[b*d*N : (b+1)*d*N]
			}
			dl := z(d * N)
			if i == len(ds)-1 {
				dl = dlast[b*d*N : (b+1)*d*N]
			}
			r := run(one, p, tokens(dout), dl)
			copy(tokens(all.out), r.out)
			copy(tokens(all.gU), r.gU)
			copy(tokens(all.gDelta), r.gDelta)
			copy(tokens(all.gZ), r.gZ)
			copy(states(all.gB), r.gB)
			copy(states(all.gC), r.gC)
			for _, acc := range [][2][]float64{{all.gA, r.gA}, {all.gD, r.gD}, {all.gDeltaBias, r.gDeltaBias}} {
				for k, v := range acc[1] {
					acc[0][k] += v
				}
			}
			if fromH0 {
				copy(all.gH0[b*d*N:], r.gH0)
			}
			if i == len(ds)-1 {
				copy(all.last[b*d*N:], r.last)
			}
		}
	}
	return all
}

// TestResetsPackedEqualsSeparate: a packed batch gives the outputs, final states and gradients
// of its documents run one by one, for the float64 reference and for the fast kernel (channel
// and time mode, documents starting inside chunks, at chunk and segment starts, at step 0
// with an H0 that must then be ignored, and one-step documents).
func TestResetsPackedEqualsSeparate(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, tc := range []struct {
		s      Shape
		chunk  int
		starts [][]int // per row: the steps where a document starts
	}{
		{Shape{2, 40, 5, 4}, 8, [][]int{{13, 14, 16}, {0, 25, 39}}},
		{Shape{3, 33, 70, 8}, 8, [][]int{{8, 9}, {0, 1, 2, 32}, {}}},
		{Shape{1, 600, 4, 16}, 8, [][]int{{0, 16, 17, 100, 101, 103, 352, 599}}}, // time mode
		{Shape{2, 17, 3, 2}, 0, [][]int{{0}, {5}}},
	} {
		s := tc.s
		in, dout, dlast := randomCase(r, s, allOn)
		in.Resets = make([]uint8, s.Batch*s.Len)
		for b, row := range tc.starts {
			for _, t0 := range row {
				in.Resets[b*s.Len+t0] = 1
			}
		}
		o := Options{Softplus: true, Chunk: tc.chunk}
		ref := func(s Shape, in Inputs[float64], dout, dlast []float64) result {
			return reference(t, s, true, in, dout, dlast)
		}
		fst := func(s Shape, in Inputs[float64], dout, dlast []float64) result { return fast(t, s, o, in, dout, dlast) }
		label := fmt.Sprintf("%v chunk %d", s, tc.chunk)
		if k, _ := New(s, o); s.Batch == 1 && !k.timeMode {
			t.Fatalf("%s: want time mode", label)
		}
		want := ref(s, in, dout, dlast)
		compareResults(t, label+": reference packed vs separate", want, separately(ref, s, in, dout, dlast), 1e-12)
		got := fst(s, in, dout, dlast)
		compareResults(t, label+": fast packed vs reference", got, want, 1e-4)
		compareResults(t, label+": fast packed vs separate", got, separately(fst, s, in, dout, dlast), 1e-5)
	}
}
