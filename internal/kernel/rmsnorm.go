package kernel

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/parallel"
)

// RMSNorm is y = x / sqrt(mean(x²) + Eps) ⊙ w over each row of x (Rows, Dim),
// w (Dim). As in transformers' MambaRMSNorm the float32 kernel does all of
// it, the row reduction included, in float32.
type RMSNorm struct {
	Rows, Dim int
	Eps       float64
}

func (s RMSNorm) String() string {
	return fmt.Sprintf("RMSNorm{rows=%d,dim=%d,eps=%g}", s.Rows, s.Dim, s.Eps)
}
func (s RMSNorm) Inputs() [][]int { return [][]int{{s.Rows, s.Dim}, {s.Dim}} }
func (s RMSNorm) Output() []int   { return []int{s.Rows, s.Dim} }

func (s RMSNorm) Validate() error {
	if !(s.Eps > 0) || math.IsInf(s.Eps, 0) {
		return fmt.Errorf("kernel: RMSNorm: eps %g must be positive and finite", s.Eps)
	}
	return validate(s, "rows,dim", s.Rows, s.Dim)
}

// rmsRows is the number of rows in one parallel block of the float32 kernel.
const rmsRows = 32

// RMSNormRow writes y = x·r ⊙ w for one row and returns r = 1/sqrt(mean(x²)+eps):
// the float32 kernel's row, which the recurrent decoder calls too.
func RMSNormRow(y, x, w []float32, eps float32) float32 {
	d := len(x)
	y, w = y[:d], w[:d]
	r := 1 / float32(math.Sqrt(float64(Dot(x, x)/float32(d)+eps)))
	for j, v := range x {
		y[j] = v * r * w[j]
	}
	return r
}

func (s RMSNorm) CPUKernel() Kernel[[]float32] {
	k := &rmsNorm32{s: s, eps: float32(s.Eps), rstd: make([]float32, s.Rows), part: make([]float32, blocks(s.Rows, rmsRows)*s.Dim)}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}

// rmsNorm32 is the float32 kernel: rows in parallel blocks, the weight
// gradient summed per block and then over blocks in order.
type rmsNorm32 struct {
	s        RMSNorm
	eps      float32
	rstd     []float32 // (rows) r of each row, saved for backward
	part     []float32 // (blocks, dim) per-block sums of dw
	sums     partSum
	job      parallel.Job
	fwd, bwd items
	in       [][]float32
	y, dy    []float32
	din      [][]float32
	addX     bool // the backward adds to dx
}

func (k *rmsNorm32) Forward(in [][]float32, y []float32) {
	k.in, k.y = in, y
	run(&k.job, k.fwd, blocks(k.s.Rows, rmsRows))
	k.in, k.y = nil, nil
}

func (k *rmsNorm32) forwardItem(_, b int) {
	x, w, d := k.in[0], k.in[1], k.s.Dim
	lo, hi := span(b, rmsRows, k.s.Rows)
	for r := lo; r < hi; r++ {
		k.rstd[r] = RMSNormRow(k.y[r*d:(r+1)*d], x[r*d:(r+1)*d], w, k.eps)
	}
}

// Backward: with r = (m + eps)^(−1/2), m = (1/d)·Σ_k x_k², y_j = w_j·x_j·r and
// ∂r/∂x_k = −r³·x_k/d,
//
//	dx_k = g_k·w_k·r + Σ_j g_j·w_j·x_j·(−r³·x_k/d) = r·(g_k·w_k − x_k·r²·(1/d)·Σ_j g_j·w_j·x_j)
//	dw_j = Σ_rows g_j·x_j·r
func (k *rmsNorm32) Backward(in [][]float32, dy []float32, din [][]float32) {
	k.BackwardAdd(in, dy, din, nil)
}

// Accumulates: x.
func (k *rmsNorm32) Accumulates(i int) bool { return i == 0 }

func (k *rmsNorm32) BackwardAdd(in [][]float32, dy []float32, din [][]float32, add []bool) {
	k.in, k.dy, k.din, k.addX = in, dy, din, adds(add, 0)
	run(&k.job, k.bwd, blocks(k.s.Rows, rmsRows))
	if din[1] != nil {
		k.sums.run(din[1], k.part)
	}
	k.in, k.dy, k.din = nil, nil, nil
}

func (k *rmsNorm32) backwardItem(_, b int) {
	x, w, dx, d := k.in[0], k.in[1], k.din[0], k.s.Dim
	lo, hi := span(b, rmsRows, k.s.Rows)
	part := k.part[b*d : (b+1)*d]
	clear(part)
	for r := lo; r < hi; r++ {
		xr, gr := x[r*d:(r+1)*d], k.dy[r*d:(r+1)*d]
		rs := k.rstd[r]
		var s float32
		for j, g := range gr {
			s += g * w[j] * xr[j]
		}
		c := s * rs * rs / float32(d)
		if dx != nil {
			dxr := dx[r*d : (r+1)*d]
			if k.addX {
				for j, g := range gr {
					dxr[j] += rs * (g*w[j] - xr[j]*c)
				}
			} else {
				for j, g := range gr {
					dxr[j] = rs * (g*w[j] - xr[j]*c)
				}
			}
		}
		for j, g := range gr {
			part[j] += g * xr[j] * rs
		}
	}
}

func (s RMSNorm) ReferenceKernel() Kernel[[]float64] {
	return &rmsNormRef{s: s, rstd: make([]float64, s.Rows)}
}

// rmsNormRef is the float64 reference: the same math, one row at a time.
type rmsNormRef struct {
	s    RMSNorm
	rstd []float64
}

func (k *rmsNormRef) Forward(in [][]float64, y []float64) {
	x, w, d := in[0], in[1], k.s.Dim
	for r := 0; r < k.s.Rows; r++ {
		m := 0.0
		for j := 0; j < d; j++ {
			m += x[r*d+j] * x[r*d+j]
		}
		k.rstd[r] = 1 / math.Sqrt(m/float64(d)+k.s.Eps)
		for j := 0; j < d; j++ {
			y[r*d+j] = x[r*d+j] * k.rstd[r] * w[j]
		}
	}
}

func (k *rmsNormRef) Backward(in [][]float64, dy []float64, din [][]float64) {
	x, w, d := in[0], in[1], k.s.Dim
	dx, dw := din[0], din[1]
	if dw != nil {
		clear(dw)
	}
	for r := 0; r < k.s.Rows; r++ {
		rs, s := k.rstd[r], 0.0
		for j := 0; j < d; j++ {
			s += dy[r*d+j] * w[j] * x[r*d+j]
		}
		for j := 0; j < d; j++ {
			if dx != nil {
				dx[r*d+j] = rs * (dy[r*d+j]*w[j] - x[r*d+j]*rs*rs*s/float64(d))
			}
			if dw != nil {
				dw[j] += dy[r*d+j] * x[r*d+j] * rs
			}
		}
	}
}
