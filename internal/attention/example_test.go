package attention_test

import (
	"fmt"

	"github.com/mambago/mamba/internal/attention"
)

// One head of size 2 over three tokens: the first query sees only itself; the third, whose query
// is aligned with the first key, puts most of its weight on the first value.
func ExampleNew() {
	s := attention.Shape{Batch: 1, Len: 3, Heads: 1, KVHeads: 1, HeadDim: 2}
	k, err := attention.New(s, attention.Options{})
	if err != nil {
		panic(err)
	}
	in := attention.Inputs[float32]{
		Q: []float32{1, 0, 0, 1, 4, 0},
		K: []float32{4, 0, 0, 4, 0, 0},
		V: []float32{1, 0, 0, 1, 1, 1},
	}
	out := make([]float32, 6)
	if err := k.Forward(in, out); err != nil {
		panic(err)
	}
	fmt.Printf("out %.4f\n", out)
	fmt.Printf("lse %.4f\n", k.LSE())

	// With a document starting at token 2, the third query sees only its own key.
	in.Resets = []uint8{0, 0, 1}
	if err := k.Forward(in, out); err != nil {
		panic(err)
	}
	fmt.Printf("out %.4f\n", out)
	// Output:
	// out [1.0000 0.0000 0.0558 0.9442 1.0000 0.0000]
	// lse [2.8284 2.8859 11.3137]
	// out [1.0000 0.0000 0.0558 0.9442 1.0000 1.0000]
}

// The rotation of transformers' Llama: position 1 turns the pair (x_0, x_2) by 1 radian and
// (x_1, x_3) by 1/θ^(1/2) = 0.01 radian.
func ExampleRope() {
	r, err := attention.NewRope(4, 8, 10000)
	if err != nil {
		panic(err)
	}
	x := []float32{1, 1, 0, 0}
	if err := r.Forward(x, x, []int32{1}, 1); err != nil {
		panic(err)
	}
	fmt.Printf("%.4f\n", x)
	// Output:
	// [0.5403 0.9999 0.8415 0.0100]
}
