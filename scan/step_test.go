package scan

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// token returns step t of a (Batch, Len, width) tensor as a (Batch, width) one.
func token(x []float32, s Shape, width, t int) []float32 {
	if x == nil {
		return nil
	}
	y := make([]float32, 0, s.Batch*width)
	for b := range s.Batch {
		y = append(y, x[(b*s.Len+t)*width:][:width]...)
	}
	return y
}

// TestStepMatchesFast: Len Steps from H0, with the channels split into ranges run concurrently,
// give Fast's outputs and final state bit for bit (documents starting included), and agree with
// the float64 reference; every path, State a multiple of 16, of 8 only, and neither.
func TestStepMatchesFast(t *testing.T) {
	cases := []struct {
		s Shape
		c config
	}{
		{Shape{3, 9, 70, 16}, packed}, {Shape{2, 1, 21, 16}, allOn}, {Shape{2, 7, 5, 5}, packed},
		{Shape{1, 6, 19, 8}, config{}}, {Shape{2, 5, 9, 16}, config{D: true, Z: true, Bias: true}},
	}
	r := rand.New(rand.NewPCG(43, 44))
	for _, tc := range cases {
		s := tc.s
		in64, dout, dlast := randomCase(r, s, tc.c)
		want := reference(t, s, tc.c.Softplus, in64, dout, dlast)
		in := toF32(in64)
		onPaths(t, func(t *testing.T) {
			label := fmt.Sprintf("%v %+v", s, tc.c)
			k, err := New(s, Options{Softplus: tc.c.Softplus, Chunk: 4})
			if err != nil {
				t.Fatal(err)
			}
			out, last := make([]float32, s.Batch*s.Len*s.Channels), make([]float32, s.Batch*s.Channels*s.State)
			if err := k.Forward(in, out, last); err != nil {
				t.Fatal(err)
			}
			one := s
			one.Len = 1
			p, err := NewStepper(one, Options{Softplus: tc.c.Softplus})
			if err != nil {
				t.Fatal(err)
			}
			h := make([]float32, len(last))
			copy(h, in.H0)
			stepOut := make([]float32, s.Batch*s.Channels)
			var got []float32 // (Len, Batch, Channels)
			cuts := []int{0, s.Channels / 3, s.Channels/3 + 1, s.Channels}
			for tt := range s.Len {
				x := Inputs[float32]{U: token(in.U, s, s.Channels, tt), Delta: token(in.Delta, s, s.Channels, tt),
					A: in.A, B: token(in.B, s, s.State, tt), C: token(in.C, s, s.State, tt), D: in.D,
					Z: token(in.Z, s, s.Channels, tt), DeltaBias: in.DeltaBias}
				if in.Resets != nil {
					x.Resets = make([]uint8, s.Batch)
					for b := range s.Batch {
						x.Resets[b] = in.Resets[b*s.Len+tt]
					}
				}
				var wg sync.WaitGroup
				for i := range len(cuts) - 1 {
					wg.Go(func() {
						if err := p.Step(x, h, stepOut, cuts[i], cuts[i+1]); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				got = append(got, stepOut...)
			}
			for tt := range s.Len {
				for b := range s.Batch {
					g := got[(tt*s.Batch+b)*s.Channels:][:s.Channels]
					f := out[(b*s.Len+tt)*s.Channels:][:s.Channels]
					for c := range g {
						if g[c] != f[c] {
							t.Fatalf("%s: step %d row %d channel %d: Step %v, Fast %v", label, tt, b, c, g[c], f[c])
						}
					}
				}
			}
			for i := range h {
				if h[i] != last[i] {
					t.Fatalf("%s: state element %d: Step %v, Fast %v", label, i, h[i], last[i])
				}
			}
			compareResults(t, label+" steps vs reference", result{out: widen(out), last: widen(h)},
				result{out: want.out, last: want.last}, 1e-4)
		})
	}
}

// TestStepNoAllocations: a warm Step allocates nothing, on every path.
func TestStepNoAllocations(t *testing.T) { onPaths(t, stepNoAllocations) }

func stepNoAllocations(t *testing.T) {
	s := Shape{4, 1, 40, 16}
	in := toF32(randomInputs(rand.New(rand.NewPCG(45, 46)), s, allOn))
	in.H0 = nil
	p, err := NewStepper(s, Options{Softplus: true})
	if err != nil {
		t.Fatal(err)
	}
	h, out := make([]float32, s.Batch*s.Channels*s.State), make([]float32, s.Batch*s.Channels)
	if a := testing.AllocsPerRun(10, func() {
		if err := p.Step(in, h, out, 3, 37); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per Step", a)
	}
}

// TestStepErrors: a Stepper needs Len 1; Step refuses H0, wrong lengths and bad channel ranges.
func TestStepErrors(t *testing.T) {
	if _, err := NewStepper(Shape{1, 2, 3, 4}, Options{}); err == nil {
		t.Error("NewStepper accepted Len 2")
	}
	s := Shape{2, 1, 5, 4}
	p, err := NewStepper(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := toF32(randomInputs(rand.New(rand.NewPCG(47, 48)), s, allOn))
	h, out := make([]float32, 2*5*4), make([]float32, 2*5)
	noH0 := in
	noH0.H0 = nil
	for name, err := range map[string]error{
		"H0 set":       p.Step(in, h, out, 0, 5),
		"short h":      p.Step(noH0, h[1:], out, 0, 5),
		"short out":    p.Step(noH0, h, out[1:], 0, 5),
		"range past":   p.Step(noH0, h, out, 2, 6),
		"range upside": p.Step(noH0, h, out, 3, 2),
		"negative":     p.Step(noH0, h, out, -1, 2),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
