package autograd

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func rmsNormApply(eps float64) func(in []*gorgonia.Node) (*gorgonia.Node, error) {
	return func(in []*gorgonia.Node) (*gorgonia.Node, error) { return RMSNorm(in[0], in[1], eps) }
}

func rmsNormVals(rng *rand.Rand, rows, d int) func() [][]float64 {
	return func() [][]float64 {
		w := randn(rng, d, 0.5)
		for i := range w {
			w[i]++
		}
		return [][]float64{randn(rng, rows*d, 1.5), w}
	}
}

func TestRMSNormGradFD(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][2]int{{3, 5}, {1, 1}, {4, 2}} {
		r := newRig(t, tensor.Float64, [][]int{{s[0], s[1]}, {s[1]}}, 7, rmsNormApply(1e-5))
		checkGradFD(t, r, rmsNormVals(rng, s[0], s[1]), 1e-7)
	}
}

func TestRMSNormFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range [][2]int{{70, 33}, {5, 256}} {
		shapes := [][]int{{s[0], s[1]}, {s[1]}}
		r32 := newRig(t, tensor.Float32, shapes, 5, rmsNormApply(1e-5))
		r64 := newRig(t, tensor.Float64, shapes, 5, rmsNormApply(1e-5))
		checkFloat32(t, r32, r64, rmsNormVals(rng, s[0], s[1])(), 1e-5)
	}
}

// TestRMSNormReference checks the reference forward against the definition
// on a hand-computed row.
func TestRMSNormReference(t *testing.T) {
	k := &rmsNormRef{rows: 1, d: 2, eps: 0.5, rstd: make([]float64, 1)}
	y := make([]float64, 2)
	k.forward([][]float64{{3, 4}, {2, -1}}, y)
	// mean(x²) = 12.5, 1/sqrt(12.5+0.5) = 1/sqrt(13)
	want := []float64{6 / 3.605551275463989, -4 / 3.605551275463989}
	if e := maxRelErr(y, want); e > 1e-15 {
		t.Errorf("reference RMSNorm: got %v, want %v", y, want)
	}
}
