package optim_test

import (
	"fmt"

	"github.com/mambago/mamba/optim"
)

// Minimise (w − 3)² with AdamW: clip, schedule, step.
func ExampleAdamW() {
	w := []float32{0}
	g := []float32{0}
	cfg := optim.Defaults()
	cfg.LR, cfg.WeightDecay, cfg.Schedule = 0.1, 0, optim.Constant
	opt, err := optim.New([]optim.Param{{Name: "w", Value: w, Grad: g}}, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for t := range 300 {
		g[0] = 2 * (w[0] - 3)
		norm := opt.GradNorm()
		opt.Step(cfg.LRAt(t, 300), optim.ClipScale(norm, cfg.GradClip))
	}
	fmt.Printf("w = %.2f\n", w[0])
	// Output: w = 3.00
}
