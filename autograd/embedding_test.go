package autograd

import (
	"math/rand/v2"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func embedApply(ids *Ids) func(in []*gorgonia.Node) (*gorgonia.Node, error) {
	return func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Embedding(ids, in[0]) }
}

func TestEmbeddingGradFD(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	ids, err := NewIds(7, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := ids.Set([]int32{0, 4, 2, 2, 4, 2, 1}); err != nil { // repeats: the scatter adds
		t.Fatal(err)
	}
	r := newRig(t, tensor.Float64, [][]int{{6, 3}}, 11, embedApply(ids)) // one padding row never used
	checkGradFD(t, r, func() [][]float64 { return [][]float64{randn(rng, 18, 1)} }, 1e-8)
}

func TestEmbeddingFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, vocab, d = 300, 40, 130
	ids, _ := NewIds(n, vocab)
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(rng.IntN(vocab))
	}
	if err := ids.Set(v); err != nil {
		t.Fatal(err)
	}
	shapes := [][]int{{vocab, d}}
	r32 := newRig(t, tensor.Float32, shapes, 13, embedApply(ids))
	r64 := newRig(t, tensor.Float64, shapes, 13, embedApply(ids))
	checkFloat32(t, r32, r64, [][]float64{randn(rng, vocab*d, 1)}, 1e-6)
}

// TestEmbeddingIdsPerStep checks that the graph reads the ids held at each
// run, and that an unset holder is an error from RunAll, not a panic.
func TestEmbeddingIdsPerStep(t *testing.T) {
	ids, _ := NewIds(2, 3)
	r := newRig(t, tensor.Float64, [][]int{{3, 2}}, 1, embedApply(ids))
	table := []float64{1, 2, 3, 4, 5, 6}
	gorgonia.Let(r.in[0], toValue(tensor.Float64, []int{3, 2}, table))
	if err := r.m.RunAll(); err == nil || !strings.Contains(err.Error(), "never Set") {
		t.Errorf("RunAll with unset ids: error %v, want one saying the ids were never Set", err)
	}
	r.m.Reset()
	for _, c := range []struct {
		ids  []int32
		want []float64
	}{{[]int32{2, 0}, []float64{5, 6, 1, 2}}, {[]int32{1, 1}, []float64{3, 4, 3, 4}}} {
		if err := ids.Set(c.ids); err != nil {
			t.Fatal(err)
		}
		if out, _, _ := r.run(t, [][]float64{table}); maxRelErr(out, c.want) != 0 {
			t.Errorf("ids %v: got %v, want %v", c.ids, out, c.want)
		}
	}
}
