package autograd_test

import (
	"fmt"
	"log"
	"math"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/scan"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// An RMSNorm in a float32 graph, with the gradients of sum(y ⊙ R).
func ExampleRMSNorm() {
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, 2), gorgonia.WithName("x"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(2, 2), tensor.WithBacking([]float32{3, 4, 1, -1}))))
	w := gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(2), gorgonia.WithName("w"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{1, 2}))))
	r := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, 2), gorgonia.WithName("R"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(2, 2), tensor.WithBacking([]float32{1, 0, 0, 1}))))
	y, err := autograd.RMSNorm(x, w, 1e-5)
	if err != nil {
		log.Fatal(err)
	}
	loss := gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(y, r))))
	grads, err := gorgonia.Grad(loss, x, w)
	if err != nil {
		log.Fatal(err)
	}
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("y  %.4f\ndx %.4f\ndw %.4f\n", y.Value().Data(), grads[0].Value().Data(), grads[1].Value().Data())
	// Output:
	// y  [0.8485 2.2627 1.0000 -2.0000]
	// dx [0.1810 -0.1358 1.0000 1.0000]
	// dw [0.8485 -1.0000]
}

// A tiny language-model head: embed the tokens, score them against the same
// table (tied weights) and take the cross-entropy against the next tokens,
// ignoring the last position. The Ids are Set before every run.
func ExampleCrossEntropy() {
	const n, vocab, d = 3, 4, 2
	g := gorgonia.NewGraph()
	table := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(vocab, d), gorgonia.WithName("table"),
		gorgonia.WithValue(tensor.New(tensor.WithShape(vocab, d), tensor.WithBacking([]float64{1, 0, 0, 1, -1, 0, 0, -1}))))
	ids, _ := autograd.NewIds(n, vocab)
	targets, _ := autograd.NewTargets(n, vocab)
	h, err := autograd.Embedding(ids, table)
	if err != nil {
		log.Fatal(err)
	}
	logits := gorgonia.Must(gorgonia.Mul(h, gorgonia.Must(gorgonia.Transpose(table))))
	loss, err := autograd.CrossEntropy(logits, targets)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := gorgonia.Grad(loss, table); err != nil {
		log.Fatal(err)
	}
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	for _, step := range [][2][]int32{{{0, 1, 2}, {1, 2, autograd.IgnoreIndex}}, {{3, 3, 3}, {3, 3, 3}}} {
		if err := ids.Set(step[0]); err != nil {
			log.Fatal(err)
		}
		if err := targets.Set(step[1]); err != nil {
			log.Fatal(err)
		}
		if err := m.RunAll(); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("loss %.4f\n", loss.Value().Data())
		m.Reset()
	}
	// Output:
	// loss 1.6265
	// loss 0.6265
}

// A selective scan with a softplus Δ, run for two steps with new inputs as
// a trainer does: Let, RunAll, read, Reset.
func ExampleSelectiveScan() {
	const batch, l, ch, n = 1, 3, 2, 1
	g := gorgonia.NewGraph()
	node := func(name string, v []float64, s ...int) *gorgonia.Node {
		return gorgonia.NewTensor(g, tensor.Float64, len(s), gorgonia.WithShape(s...), gorgonia.WithName(name),
			gorgonia.WithValue(tensor.New(tensor.WithShape(s...), tensor.WithBacking(v))))
	}
	u := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(batch*l, ch), gorgonia.WithName("u"))
	delta := node("delta", []float64{0, 0, 0, 0, 0, 0}, batch*l, ch)
	aLog := node("aLog", []float64{0, math.Ln2}, ch, n) // A = −exp(aLog) = (−1, −2)
	B := node("B", []float64{1, 1, 1}, batch*l, n)
	C := node("C", []float64{1, 1, 1}, batch*l, n)
	out, err := autograd.SelectiveScan(batch, u, delta, aLog, B, C, nil, nil, nil, scan.Options{Softplus: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	// Δ = softplus(0) = ln 2, so channel 0 decays by exp(−ln 2) = 1/2 per
	// step and channel 1 by 1/4; the first input is an impulse in each.
	for _, uv := range [][]float64{{1, 0, 0, 1, 0, 0}, {0, 0, 0, 0, 2, 2}} {
		if err := gorgonia.Let(u, tensor.New(tensor.WithShape(batch*l, ch), tensor.WithBacking(uv))); err != nil {
			log.Fatal(err)
		}
		if err := m.RunAll(); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%.4f\n", out.Value().Data())
		m.Reset()
	}
	// Output:
	// [0.6931 0.0000 0.3466 0.6931 0.1733 0.1733]
	// [0.0000 0.0000 0.0000 0.0000 1.3863 1.3863]
}

// UseBLAS is called once at start-up; the trainer logs its answer.
func ExampleUseBLAS() {
	log.Printf("matrix products: %s", autograd.UseBLAS())
}
