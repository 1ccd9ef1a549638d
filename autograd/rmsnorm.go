package autograd

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/parallel"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RMSNorm returns y = x / sqrt(mean(x²) + eps) ⊙ weight, the mean taken over
// each row of x (rows, d); weight is (d). As in transformers' MambaRMSNorm the
// float32 graph does all of it, the row reduction included, in float32.
func RMSNorm(x, weight *gorgonia.Node, eps float64) (*gorgonia.Node, error) {
	const op = "RMSNorm"
	_, _, dt, err := inputs(op, arg{"x", x, false}, arg{"weight", weight, false})
	if err != nil {
		return nil, err
	}
	if err := checkShape(op, "x", x, -1, -1); err != nil {
		return nil, err
	}
	rows, d := x.Shape()[0], x.Shape()[1]
	if err := checkShape(op, "weight", weight, d); err != nil {
		return nil, err
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("autograd: %s: eps %g must be positive and finite", op, eps)
	}
	s := spec{
		name:  fmt.Sprintf("%s{eps=%g}", op, eps),
		dtype: dt,
		in:    []tensor.Shape{{rows, d}, {d}},
		out:   tensor.Shape{rows, d},
	}
	return build(s,
		func() kernel[float32] {
			return &rmsNorm32{rows: rows, d: d, eps: float32(eps), rstd: make([]float32, rows)}
		},
		func() kernel[float64] {
			return &rmsNormRef{rows: rows, d: d, eps: eps, rstd: make([]float64, rows)}
		},
		x, weight)
}

// rmsRows is the number of rows in one parallel block of the float32 kernel.
const rmsRows = 32

// rmsNorm32 is the fast float32 kernel: rows in parallel blocks, the weight
// gradient summed per block and then over blocks in order.
type rmsNorm32 struct {
	rows, d int
	eps     float32
	rstd    []float32 // (rows) r = 1/sqrt(mean(x²)+eps), saved for backward
	part    []float32 // (blocks, d) per-block sums of dweight
}

func (k *rmsNorm32) forward(in [][]float32, y []float32) error {
	x, w, d := in[0], in[1], k.d
	parallel.For(k.rows, rmsRows, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*d:(r+1)*d], y[r*d:(r+1)*d]
			rs := 1 / float32(math.Sqrt(float64(dot32(xr, xr)/float32(d)+k.eps)))
			k.rstd[r] = rs
			for j, v := range xr {
				yr[j] = v * rs * w[j]
			}
		}
	})
	return nil
}

// backward: with r = (m + eps)^(−1/2), m = (1/d)·Σ_k x_k², y_j = w_j·x_j·r and
// ∂r/∂x_k = −r³·x_k/d,
//
//	dx_k = g_k·w_k·r + Σ_j g_j·w_j·x_j·(−r³·x_k/d) = r·(g_k·w_k − x_k·r²·(1/d)·Σ_j g_j·w_j·x_j)
//	dw_j = Σ_rows g_j·x_j·r
func (k *rmsNorm32) backward(in [][]float32, dy []float32, din [][]float32) error {
	x, w, dx, d := in[0], in[1], din[0], k.d
	k.part = grow(k.part, (k.rows+rmsRows-1)/rmsRows*d)
	parallel.For(k.rows, rmsRows, func(_, lo, hi int) {
		part := k.part[lo/rmsRows*d : (lo/rmsRows+1)*d]
		clear(part)
		for r := lo; r < hi; r++ {
			xr, gr, dxr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d], dx[r*d:(r+1)*d]
			rs := k.rstd[r]
			var s float32
			for j, g := range gr {
				s += g * w[j] * xr[j]
			}
			c := s * rs * rs / float32(d)
			for j, g := range gr {
				dxr[j] = rs * (g*w[j] - xr[j]*c)
				part[j] += g * xr[j] * rs
			}
		}
	})
	sumBlocks(din[1], k.part)
	return nil
}

// dot32 is Σ a_i·b_i in float32 with four interleaved partial sums.
func dot32(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// rmsNormRef is the plain float64 reference kernel (same math, one row at a time).
type rmsNormRef struct {
	rows, d int
	eps     float64
	rstd    []float64
}

func (k *rmsNormRef) forward(in [][]float64, y []float64) error {
	x, w, d := in[0], in[1], k.d
	for r := 0; r < k.rows; r++ {
		m := 0.0
		for j := 0; j < d; j++ {
			m += x[r*d+j] * x[r*d+j]
		}
		k.rstd[r] = 1 / math.Sqrt(m/float64(d)+k.eps)
		for j := 0; j < d; j++ {
			y[r*d+j] = x[r*d+j] * k.rstd[r] * w[j]
		}
	}
	return nil
}

func (k *rmsNormRef) backward(in [][]float64, dy []float64, din [][]float64) error {
	x, w, dx, dw, d := in[0], in[1], din[0], din[1], k.d
	clear(dw)
	for r := 0; r < k.rows; r++ {
		rs, s := k.rstd[r], 0.0
		for j := 0; j < d; j++ {
			s += dy[r*d+j] * w[j] * x[r*d+j]
		}
		for j := 0; j < d; j++ {
			dx[r*d+j] = rs * (dy[r*d+j]*w[j] - x[r*d+j]*rs*rs*s/float64(d))
			dw[j] += dy[r*d+j] * x[r*d+j] * rs
		}
	}
	return nil
}
