package autograd

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func convApply(batch int, bias, silu bool) func(in []*gorgonia.Node) (*gorgonia.Node, error) {
	return func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		var b *gorgonia.Node
		if bias {
			b = in[2]
		}
		return CausalConv1d(batch, in[0], in[1], b, silu)
	}
}

func convShapes(batch, l, ch, k int, bias bool) [][]int {
	s := [][]int{{batch * l, ch}, {ch, k}}
	if bias {
		s = append(s, []int{ch})
	}
	return s
}

func convVals(rng *rand.Rand, shapes [][]int) func() [][]float64 {
	return func() [][]float64 {
		var v [][]float64
		for _, s := range shapes {
			v = append(v, randn(rng, size(s), 1))
		}
		return v
	}
}

func TestCausalConv1dGradFD(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		batch, l, ch, k int
		bias, silu      bool
	}{
		{2, 5, 3, 4, true, true},
		{1, 3, 2, 4, false, true}, // L < K
		{3, 4, 2, 1, true, false},
		{2, 6, 1, 2, false, false},
	} {
		shapes := convShapes(c.batch, c.l, c.ch, c.k, c.bias)
		r := newRig(t, tensor.Float64, shapes, 8, convApply(c.batch, c.bias, c.silu))
		checkGradFD(t, r, convVals(rng, shapes), 1e-7)
	}
}

func TestCausalConv1dFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct {
		batch, l, ch, k int
		bias, silu      bool
	}{
		{2, 150, 9, 4, true, true}, // pieces that end inside a sequence, and a short last piece
		{3, 64, 5, 3, false, true},
		{2, 70, 4, 2, true, false},
		{2, 40, 45, 4, true, true}, // channels in 32-, 8- and 1-lane steps of mulAdd
	} {
		shapes := convShapes(c.batch, c.l, c.ch, c.k, c.bias)
		r32 := newRig(t, tensor.Float32, shapes, 9, convApply(c.batch, c.bias, c.silu))
		r64 := newRig(t, tensor.Float64, shapes, 9, convApply(c.batch, c.bias, c.silu))
		checkFloat32(t, r32, r64, convVals(rng, shapes)(), 1e-5)
	}
}

// TestCausalConv1dReference checks the reference on a hand-computed case:
// one channel, K = 2, two sequences of length 2, no bias, no SiLU.
func TestCausalConv1dReference(t *testing.T) {
	k := &convRef{convGeom{batch: 2, l: 2, ch: 1, k: 2}}
	y := make([]float64, 4)
	k.forward([][]float64{{1, 2, 3, 4}, {10, 1}}, y)
	// y_t = 10·x_{t−1} + 1·x_t, with x_{−1} = 0 in each sequence
	if want := []float64{1, 12, 3, 34}; maxRelErr(y, want) != 0 {
		t.Errorf("reference conv: got %v, want %v", y, want)
	}
}

// TestMulAdd checks mulAdd (the assembly one on amd64 with AVX2 and FMA) and
// mulAddGo against float64 sums, on lengths that reach every loop of the
// assembly; the bytes past len(dst) stay untouched.
func TestMulAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for n := 0; n <= 80; n++ {
		a, b, d := convert[float32](randn(rng, n+1, 1)), convert[float32](randn(rng, n+1, 1)), convert[float32](randn(rng, n+1, 1))
		want := make([]float64, n+1)
		for i := range want {
			want[i] = float64(d[i])
			if i < n {
				want[i] += float64(a[i]) * float64(b[i])
			}
		}
		for name, f := range map[string]func(dst, a, b []float32){"mulAdd": mulAdd, "mulAddGo": mulAddGo} {
			got := append([]float32(nil), d...)
			f(got[:n], a, b)
			if e := maxRelErr(convert[float64](got[:n]), want[:n]); e > 1e-5 || got[n] != d[n] {
				t.Errorf("%s, n = %d: max relative error %.3g, element past the end %g (was %g)", name, n, e, got[n], d[n])
			}
		}
	}
}
