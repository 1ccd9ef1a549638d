package scan

import "github.com/mambago/mamba/internal/math32"

// softplusRow replaces x by softplus(x) and sets d to its derivative σ(x) (see math32.Softplus).
var softplusRow = softplusRowGo

// sigmoidRow sets s to σ(x).
var sigmoidRow = sigmoidRowGo

func softplusRowGo(x, d []float32) {
	d = d[:len(x)]
	for j, v := range x {
		x[j], d[j] = math32.Softplus(v)
	}
}

func sigmoidRowGo(x, s []float32) {
	s = s[:len(x)]
	for j, v := range x {
		s[j] = math32.Sigmoid(v)
	}
}
