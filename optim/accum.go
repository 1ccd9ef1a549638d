package optim

// Accumulator averages gradients over micro-batches: ḡ = (1/k)·Σ_j g_j. The model
// overwrites Param.Grad on each micro-batch; Add folds it into a running sum, and Mean
// writes the average back into Param.Grad for clipping and the update.
type Accumulator struct {
	params []Param
	sum    [][]float32
	n      int
}

// NewAccumulator returns an empty accumulator for params.
func NewAccumulator(params []Param) *Accumulator {
	a := &Accumulator{params: params, sum: make([][]float32, len(params))}
	for i, p := range params {
		a.sum[i] = make([]float32, len(p.Grad))
	}
	return a
}

// Add adds the current gradients to the sum.
func (a *Accumulator) Add() {
	for i, p := range a.params {
		AddGrad(a.sum[i][:len(p.Grad)], p.Grad, a.n == 0)
	}
	a.n++
}

// Mean writes the average of the added gradients into Param.Grad and empties the sum.
func (a *Accumulator) Mean() {
	if a.n == 0 {
		return
	}
	for i, p := range a.params {
		MeanGrad(p.Grad, a.sum[i][:len(p.Grad)], a.n)
	}
	a.n = 0
}

// AddGrad folds the gradient g of one micro-batch into the running sum s of the
// earlier ones: s = g for the first micro-batch, then s += g, element by element in
// float32. Data-parallel training sums its ranks' gradients with it too, in the same
// order, so that the sums are bitwise those of one process.
func AddGrad(s, g []float32, first bool) {
	if first {
		copy(s, g)
		return
	}
	s = s[:len(g)]
	for j, x := range g {
		s[j] += x
	}
}

// MeanGrad writes the mean s·(1/k) of k summed micro-batch gradients into dst
// (which may be s).
func MeanGrad(dst, s []float32, k int) {
	inv := 1 / float32(k)
	dst = dst[:len(s)]
	for j, x := range s {
		dst[j] = x * inv
	}
}
