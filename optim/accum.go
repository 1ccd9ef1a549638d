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
		s := a.sum[i][:len(p.Grad)]
		if a.n == 0 {
			copy(s, p.Grad)
			continue
		}
		for j, g := range p.Grad {
			s[j] += g
		}
	}
	a.n++
}

// Mean writes the average of the added gradients into Param.Grad and empties the sum.
func (a *Accumulator) Mean() {
	if a.n == 0 {
		return
	}
	inv := 1 / float32(a.n)
	for i, p := range a.params {
		for j, s := range a.sum[i][:len(p.Grad)] {
			p.Grad[j] = s * inv
		}
	}
	a.n = 0
}
