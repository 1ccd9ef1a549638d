package scan_test

import (
	"fmt"

	"github.com/mambago/mamba/scan"
)

// A single channel with two states, constant input: the state fills up towards its fixed point
// Δ·u·B/(1 − exp(Δ·A)), and the gradient of out_3 reaches the first step through Ā.
func ExampleNew() {
	s := scan.Shape{Batch: 1, Len: 4, Channels: 1, State: 2}
	k, err := scan.New(s, scan.Options{})
	if err != nil {
		panic(err)
	}
	in := scan.Inputs[float32]{
		U:     []float32{1, 1, 1, 1},
		Delta: []float32{0.5, 0.5, 0.5, 0.5},
		A:     []float32{-1, -2},
		B:     []float32{1, 1, 1, 1, 1, 1, 1, 1},
		C:     []float32{1, 1, 1, 1, 1, 1, 1, 1},
	}
	out := make([]float32, 4)
	last := make([]float32, 2)
	if err := k.Forward(in, out, last); err != nil {
		panic(err)
	}
	fmt.Printf("out  %.4f\nlast %.4f\n", out, last)

	g := scan.Grads[float32]{U: make([]float32, 4)}
	if err := k.Backward(in, []float32{0, 0, 0, 1}, nil, g); err != nil {
		panic(err)
	}
	fmt.Printf("d out_3 / du %.4f\n", g.U)
	// Output:
	// out  [1.0000 1.4872 1.7388 1.8753]
	// last [1.0988 0.7765]
	// d out_3 / du [0.1365 0.2516 0.4872 1.0000]
}

// The recurrent decoder advances the state one token at a time; three Steps reproduce the first
// three outputs of ExampleNew's scan.
func ExampleStepper() {
	// One token of one row: U, Delta, Z (rows, Channels), B, C (rows, State).
	in := scan.Inputs[float32]{U: []float32{1}, Delta: []float32{0.5}, A: []float32{-1, -2}, B: []float32{1, 1},
		C: []float32{1, 1}}
	p, err := scan.NewStepper(scan.Shape{Batch: 1, Len: 1, Channels: 1, State: 2}, scan.Options{})
	if err != nil {
		panic(err)
	}
	h := make([]float32, 2) // the state, updated in place
	out := make([]float32, 1)
	for range 3 {
		if err := p.Step(in, h, out, 0, 1); err != nil {
			panic(err)
		}
		fmt.Printf("%.4f ", out[0])
	}
	fmt.Println()
	// Output:
	// 1.0000 1.4872 1.7388
}
