package sweep

import "math"

// gpt3 is the peak learning rate of GPT-3's models by parameter count (Brown et al.
// 2020, Table 2.1): the table the Mamba paper's recipe starts from.
var gpt3 = []struct{ params, lr float64 }{
	{125e6, 6.0e-4}, {350e6, 3.0e-4}, {760e6, 2.5e-4}, {1.3e9, 2.0e-4},
	{2.7e9, 1.6e-4}, {6.7e9, 1.2e-4}, {13e9, 1.0e-4}, {175e9, 0.6e-4},
}

// PaperLR is the Mamba paper's peak learning rate for a model of n parameters
// ("improved recipe", §E.2.1): 5 × the GPT-3 table's value, interpolated linearly in
// log LR against log n between the table's sizes and held at the end values outside
// them: 3e-3 up to 125M parameters, 3e-4 from 175B. (Extrapolating the table's
// trend below 125M would give learning rates above 1e-2 for the smallest models,
// where they diverge; the paper's smallest model uses 3e-3.)
func PaperLR(n float64) float64 {
	const scale = 5
	if n <= gpt3[0].params {
		return scale * gpt3[0].lr
	}
	for i := 1; i < len(gpt3); i++ {
		lo, hi := gpt3[i-1], gpt3[i]
		if n <= hi.params {
			t := math.Log(n/lo.params) / math.Log(hi.params/lo.params)
			return scale * math.Exp(math.Log(lo.lr)+t*math.Log(hi.lr/lo.lr))
		}
	}
	return scale * gpt3[len(gpt3)-1].lr
}
