package sweep

import "math"

// paperLR is 5 × the peak learning rate of GPT-3's models by parameter count (Brown
// et al. 2020, Table 2.1: 6e-4, 3e-4, 2.5e-4, 2e-4, 1.6e-4, 1.2e-4, 1e-4, 0.6e-4),
// the Mamba paper's "improved recipe" (§E.2.1).
var paperLR = []struct{ params, lr float64 }{
	{125e6, 3e-3}, {350e6, 1.5e-3}, {760e6, 1.25e-3}, {1.3e9, 1e-3},
	{2.7e9, 8e-4}, {6.7e9, 6e-4}, {13e9, 5e-4}, {175e9, 3e-4},
}

// PaperLR is the Mamba paper's peak learning rate for a model of n parameters
// ("improved recipe", §E.2.1): 5 × the GPT-3 table's value, interpolated linearly in
// log LR against log n between the table's sizes and held at the end values outside
// them: 3e-3 up to 125M parameters, 3e-4 from 175B. (Extrapolating the table's
// trend below 125M would give a learning rate of about 1 at 20k parameters.)
func PaperLR(n float64) float64 {
	t := paperLR
	if n <= t[0].params {
		return t[0].lr
	}
	for i := 1; i < len(t); i++ {
		lo, hi := t[i-1], t[i]
		if n == hi.params {
			return hi.lr
		}
		if n < hi.params {
			f := math.Log(n/lo.params) / math.Log(hi.params/lo.params)
			return math.Exp(math.Log(lo.lr) + f*math.Log(hi.lr/lo.lr))
		}
	}
	return t[len(t)-1].lr
}
