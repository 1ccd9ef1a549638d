package train_test

import (
	"fmt"

	"github.com/mambago/mamba/train"
)

// A config file names only what it changes; --set overrides are applied on top and
// typed like the file's values.
func ExampleParseConfig() {
	raw := []byte(`{"optim": {"lr": 1e-3}, "run": {"max_steps": 200}}`)
	c, err := train.ParseConfig(raw, []string{"run.max_steps=500", "data.batch_size=8"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Optim.LR, c.Run.MaxSteps, c.Data.BatchSize, c.Optim.Beta2)

	_, err = train.ParseConfig(raw, []string{"optim.learning_rate=1"})
	fmt.Println(err)
	// Output:
	// 0.001 500 8 0.95
	// unknown key "optim.learning_rate" (optim keys: lr, min_lr, schedule, warmup_steps, decay_steps, beta1, beta2, eps, weight_decay, grad_clip, grad_accum)
}
