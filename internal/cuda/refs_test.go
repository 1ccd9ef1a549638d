package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// Float64 references of the device ops, written from the formulas in the kernels' comments. Each
// forward/backward pair is checked against central finite differences by
// TestReferencesFiniteDifferences (no GPU needed), and the device against them by the CUDA tests.

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func rmsNormRef(x, w []float64, rows, dim int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := range rows {
		m := 0.0
		for j := range dim {
			m += x[r*dim+j] * x[r*dim+j]
		}
		rs := 1 / math.Sqrt(m/float64(dim)+eps)
		for j := range dim {
			y[r*dim+j] = x[r*dim+j] * rs * w[j]
		}
	}
	return y
}

func rmsNormGradRef(x, w, dy []float64, rows, dim int, eps float64) (dx, dw []float64) {
	dx, dw = make([]float64, len(x)), make([]float64, dim)
	for r := range rows {
		m, s := 0.0, 0.0
		for j := range dim {
			m += x[r*dim+j] * x[r*dim+j]
			s += dy[r*dim+j] * w[j] * x[r*dim+j]
		}
		rs := 1 / math.Sqrt(m/float64(dim)+eps)
		for j := range dim {
			dx[r*dim+j] = rs * (dy[r*dim+j]*w[j] - x[r*dim+j]*rs*rs*s/float64(dim))
			dw[j] += dy[r*dim+j] * x[r*dim+j] * rs
		}
	}
	return dx, dw
}

// convFirst is the first step that step t of sequence b reads (its document's start, or t−(K−1)).
func convFirst(c Conv1dConfig, reset []byte, b, t int) int {
	lo := max(0, t-(c.Width-1))
	for s := t; s > lo && reset != nil; s-- {
		if reset[b*c.Len+s] != 0 {
			return s
		}
	}
	return lo
}

func convPreRef(c Conv1dConfig, x, w, bias []float64, reset []byte, b, t, d int) float64 {
	v := 0.0
	if bias != nil {
		v = bias[d]
	}
	for s := convFirst(c, reset, b, t); s <= t; s++ {
		v += w[d*c.Width+s-t+c.Width-1] * x[(b*c.Len+s)*c.Channels+d]
	}
	return v
}

func convRef(c Conv1dConfig, x, w, bias []float64, reset []byte) []float64 {
	y := make([]float64, len(x))
	for b := range c.Batch {
		for t := range c.Len {
			for d := range c.Channels {
				v := convPreRef(c, x, w, bias, reset, b, t, d)
				if c.SiLU {
					v *= sigmoid(v)
				}
				y[(b*c.Len+t)*c.Channels+d] = v
			}
		}
	}
	return y
}

func convGradRef(c Conv1dConfig, x, w, bias, dy []float64, reset []byte) (dx, dw, db []float64) {
	dx, dw, db = make([]float64, len(x)), make([]float64, len(w)), make([]float64, c.Channels)
	for b := range c.Batch {
		for t := range c.Len {
			for d := range c.Channels {
				i := (b*c.Len+t)*c.Channels + d
				g := dy[i]
				if c.SiLU {
					v := convPreRef(c, x, w, bias, reset, b, t, d)
					s := sigmoid(v)
					g *= s * (1 + v*(1-s))
				}
				db[d] += g
				for s := convFirst(c, reset, b, t); s <= t; s++ {
					j := d*c.Width + s - t + c.Width - 1
					dw[j] += g * x[(b*c.Len+s)*c.Channels+d]
					dx[(b*c.Len+s)*c.Channels+d] += g * w[j]
				}
			}
		}
	}
	if bias == nil {
		db = nil
	}
	return dx, dw, db
}

func gateRef(x, z []float64) []float64 {
	y := make([]float64, len(x))
	for i := range x {
		y[i] = x[i] * z[i] * sigmoid(z[i])
	}
	return y
}

func gateGradRef(x, z, dy []float64) (dx, dz []float64) {
	dx, dz = make([]float64, len(x)), make([]float64, len(x))
	for i := range x {
		s := sigmoid(z[i])
		dx[i] = dy[i] * z[i] * s
		dz[i] = dy[i] * x[i] * s * (1 + z[i]*(1-s))
	}
	return dx, dz
}

// ceRef is the mean over counted rows of logsumexp(x_r) − x_{r,t_r}.
func ceRef(x []float64, targets []int32, vocab int) float64 {
	sum, n := 0.0, 0
	for r, t := range targets {
		if t == IgnoreIndex {
			continue
		}
		row := x[r*vocab : (r+1)*vocab]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		sum += m + math.Log(s) - row[t]
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func ceGradRef(x []float64, targets []int32, vocab int, g float64) []float64 {
	dx := make([]float64, len(x))
	n := 0
	for _, t := range targets {
		if t != IgnoreIndex {
			n++
		}
	}
	for r, t := range targets {
		if t == IgnoreIndex {
			continue
		}
		row := x[r*vocab : (r+1)*vocab]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		for j, v := range row {
			dx[r*vocab+j] = g / float64(n) * math.Exp(v-m) / s
		}
		dx[r*vocab+int(t)] -= g / float64(n)
	}
	return dx
}

// matmulRef is C = op(A)·op(B) for row-major A, B (op = transpose when the flag is set).
func matmulRef(tA, tB bool, m, n, k int, a, b []float64) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for j := range n {
			s := 0.0
			for p := range k {
				av, bv := a[i*k+p], b[p*n+j]
				if tA {
					av = a[p*m+i]
				}
				if tB {
					bv = b[j*k+p]
				}
				s += av * bv
			}
			c[i*n+j] = s
		}
	}
	return c
}

// fdCheck compares grads (the backward's result for each input, nil when not differentiated) with
// central differences of L = Σ fwd(in)·dout at a few random elements of each input.
func fdCheck(t *testing.T, name string, r *rand.Rand, in [][]float64, dout []float64, fwd func([][]float64) []float64, grads [][]float64) {
	t.Helper()
	loss := func() float64 {
		s := 0.0
		for i, v := range fwd(in) {
			s += v * dout[i]
		}
		return s
	}
	const h = 1e-6
	for i, g := range grads {
		if g == nil {
			continue
		}
		want, got := make([]float64, 0, 8), make([]float64, 0, 8)
		for range 8 {
			j := r.IntN(len(in[i]))
			x := in[i][j]
			in[i][j] = x + h
			lp := loss()
			in[i][j] = x - h
			lm := loss()
			in[i][j] = x
			want = append(want, (lp-lm)/(2*h))
			got = append(got, g[j])
		}
		if e := testutil.RelL2(got, want); !testutil.Within(e, 1e-6) {
			t.Errorf("%s: input %d: gradient vs finite differences rel L2 %.3g (got %v, want %v)", name, i, e, got, want)
		}
	}
}

func TestReferencesFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	{
		rows, dim, eps := 5, 7, 1e-5
		x, w, dy := normals(r, rows*dim, 1), normals(r, dim, 1), normals(r, rows*dim, 1)
		dx, dw := rmsNormGradRef(x, w, dy, rows, dim, eps)
		fdCheck(t, "RMSNorm", r, [][]float64{x, w}, dy, func(in [][]float64) []float64 { return rmsNormRef(in[0], in[1], rows, dim, eps) }, [][]float64{dx, dw})
	}
	for _, reset := range []bool{false, true} {
		c := Conv1dConfig{Batch: 2, Len: 9, Channels: 3, Width: 4, Bias: true, SiLU: true, Reset: reset}
		x, w, b, dy := normals(r, 2*9*3, 1), normals(r, 12, 1), normals(r, 3, 1), normals(r, 2*9*3, 1)
		var mask []byte
		if reset {
			mask = make([]byte, 18)
			mask[3], mask[4], mask[9+6] = 1, 1, 1
		}
		dx, dw, db := convGradRef(c, x, w, b, dy, mask)
		fdCheck(t, "Conv1d", r, [][]float64{x, w, b}, dy, func(in [][]float64) []float64 { return convRef(c, in[0], in[1], in[2], mask) }, [][]float64{dx, dw, db})
	}
	{
		x, z, dy := normals(r, 10, 1), normals(r, 10, 2), normals(r, 10, 1)
		dx, dz := gateGradRef(x, z, dy)
		fdCheck(t, "Gate", r, [][]float64{x, z}, dy, func(in [][]float64) []float64 { return gateRef(in[0], in[1]) }, [][]float64{dx, dz})
	}
	{
		x, targets := normals(r, 4*6, 2), []int32{1, IgnoreIndex, 5, 0}
		dx := ceGradRef(x, targets, 6, 0.7)
		fdCheck(t, "CrossEntropy", r, [][]float64{x}, []float64{0.7}, func(in [][]float64) []float64 { return []float64{ceRef(in[0], targets, 6)} }, [][]float64{dx})
	}
}
