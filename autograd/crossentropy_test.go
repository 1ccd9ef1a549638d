package autograd

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func ceApply(targets *Ids) func(in []*gorgonia.Node) (*gorgonia.Node, error) {
	return func(in []*gorgonia.Node) (*gorgonia.Node, error) { return CrossEntropy(in[0], targets) }
}

func randTargets(rng *rand.Rand, n, vocab int, ignore float64) []int32 {
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(rng.IntN(vocab))
		if rng.Float64() < ignore {
			v[i] = IgnoreIndex
		}
	}
	return v
}

func TestCrossEntropyGradFD(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	targets, _ := NewTargets(5, 4)
	if err := targets.Set([]int32{3, IgnoreIndex, 0, 3, 1}); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, tensor.Float64, [][]int{{5, 6}}, 15, ceApply(targets)) // 6 logits, 4 real tokens
	checkGradFD(t, r, func() [][]float64 { return [][]float64{randn(rng, 30, 3)} }, 1e-7)
}

func TestCrossEntropyFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, c := range []struct{ n, vocab int }{{100, 257}, {33, 5}} {
		targets, _ := NewTargets(c.n, c.vocab)
		if err := targets.Set(randTargets(rng, c.n, c.vocab, 0.2)); err != nil {
			t.Fatal(err)
		}
		shapes := [][]int{{c.n, c.vocab}}
		r32 := newRig(t, tensor.Float32, shapes, 17, ceApply(targets))
		r64 := newRig(t, tensor.Float64, shapes, 17, ceApply(targets))
		checkFloat32(t, r32, r64, [][]float64{randn(rng, c.n*c.vocab, 4)}, 1e-5)
	}
}

// TestCrossEntropyReference checks the value against the definition, with
// logits large enough that a naive softmax would overflow, and the all-ignored case.
func TestCrossEntropyReference(t *testing.T) {
	targets, _ := NewTargets(2, 3)
	targets.Set([]int32{2, IgnoreIndex})
	k := &ceRef{held: hold(targets), v: 3, lse: make([]float64, 2)}
	if err := k.prepare(); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, 1)
	k.forward([][]float64{{1000, 1001, 1002, 5, 5, 5}}, out)
	want := math.Log(math.Exp(-2)+math.Exp(-1)+1) - 0 // lse − x_t with x shifted by 1002
	if math.Abs(out[0]-want) > 1e-12 {
		t.Errorf("reference cross-entropy: got %v, want %v", out[0], want)
	}
	targets.Set([]int32{IgnoreIndex, IgnoreIndex})
	k.prepare()
	k.forward([][]float64{{1, 2, 3, 4, 5, 6}}, out)
	dx := make([]float64, 6)
	k.backward([][]float64{{1, 2, 3, 4, 5, 6}}, []float64{1}, [][]float64{dx})
	if out[0] != 0 || maxAbs(dx) != 0 {
		t.Errorf("all targets ignored: loss %v, gradient %v, want 0", out[0], dx)
	}
}
