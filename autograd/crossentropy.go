package autograd

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/parallel"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CrossEntropy is the mean negative log-likelihood of the targets under
// softmax(logits), a scalar:
//
//	loss = (1/n)·Σ_{r: t_r ≠ −1} (logsumexp(logits[r]) − logits[r, t_r]),  n = #{r: t_r ≠ −1}
//
// computed with the stable logsumexp m + log Σ_j exp(x_j − m), m = max_j x_j.
// logits is (rows, V); targets holds rows ids in [0, V) or IgnoreIndex. With no
// target left the loss and its gradient are 0.
func CrossEntropy(logits *gorgonia.Node, targets *Ids) (*gorgonia.Node, error) {
	const op = "CrossEntropy"
	if targets == nil {
		return nil, fmt.Errorf("autograd: %s: targets is nil", op)
	}
	_, _, dt, err := inputs(op, arg{"logits", logits, false})
	if err != nil {
		return nil, err
	}
	if err := checkShape(op, "logits", logits, targets.Len(), -1); err != nil {
		return nil, err
	}
	v := logits.Shape()[1]
	if targets.Vocab() > v {
		return nil, fmt.Errorf("autograd: %s: targets vocabulary %d is larger than the %d logits per row", op, targets.Vocab(), v)
	}
	s := spec{name: op, dtype: dt, in: []tensor.Shape{{targets.Len(), v}}}
	return build(s,
		func() kernel[float32] {
			return &ce32{held: hold(targets), v: v, lse: make([]float32, targets.Len())}
		},
		func() kernel[float64] {
			return &ceRef{held: hold(targets), v: v, lse: make([]float64, targets.Len())}
		},
		logits)
}

// ceRows is the number of rows in one parallel block of the float32 kernel.
const ceRows = 16

// ce32 is the fast float32 kernel. Row losses are summed per block in
// float64, then over blocks in order. The backward recomputes the softmax
// from the saved logsumexp instead of keeping (rows, V) probabilities.
type ce32 struct {
	held
	v    int
	lse  []float32 // (rows) logsumexp of each row, saved for backward
	tmp  []float32 // (workers, V) e^(x − max) of one row
	part []float64 // (blocks) per-block sums of row losses
}

func (k *ce32) forward(in [][]float32, out []float32) error {
	x, v := in[0], k.v
	k.part = grow(k.part, (len(k.idx)+ceRows-1)/ceRows)
	k.tmp = grow(k.tmp, parallel.Workers((len(k.idx)+ceRows-1)/ceRows, 0)*v)
	parallel.For(len(k.idx), ceRows, func(wk, lo, hi int) {
		e, sum := k.tmp[wk*v:][:v], 0.0
		for r := lo; r < hi; r++ {
			t := k.idx[r]
			if t == IgnoreIndex {
				continue
			}
			xr := x[r*v : (r+1)*v]
			m := xr[0]
			for _, z := range xr {
				m = max(m, z)
			}
			math32.ExpAffine(e, xr, 1, -m)
			var s0, s1 float32
			j := 0
			for ; j+2 <= v; j += 2 {
				s0 += e[j]
				s1 += e[j+1]
			}
			if j < v {
				s0 += e[j]
			}
			k.lse[r] = m + float32(math.Log(float64(s0+s1)))
			sum += float64(k.lse[r] - xr[t])
		}
		k.part[lo/ceRows] = sum
	})
	out[0] = 0
	if k.count > 0 {
		total := 0.0
		for _, p := range k.part {
			total += p
		}
		out[0] = float32(total / float64(k.count))
	}
	return nil
}

// backward: ∂loss/∂x[r,j] = (softmax(x[r])_j − [j = t_r])/n for counted rows,
// 0 for ignored rows; times the upstream scalar g.
func (k *ce32) backward(in [][]float32, dout []float32, din [][]float32) error {
	x, dx, v := in[0], din[0], k.v
	scale := float32(0)
	if k.count > 0 {
		scale = dout[0] / float32(k.count)
	}
	parallel.For(len(k.idx), ceRows, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dr := x[r*v:(r+1)*v], dx[r*v:(r+1)*v]
			t := k.idx[r]
			if t == IgnoreIndex {
				clear(dr)
				continue
			}
			math32.ExpAffine(dr, xr, 1, -k.lse[r])
			for j := range dr {
				dr[j] *= scale
			}
			dr[t] -= scale
		}
	})
	return nil
}

// ceRef is the plain float64 reference kernel.
type ceRef struct {
	held
	v   int
	lse []float64
}

func (k *ceRef) forward(in [][]float64, out []float64) error {
	x, v, sum := in[0], k.v, 0.0
	for r, t := range k.idx {
		if t == IgnoreIndex {
			continue
		}
		m := math.Inf(-1)
		for j := 0; j < v; j++ {
			m = math.Max(m, x[r*v+j])
		}
		s := 0.0
		for j := 0; j < v; j++ {
			s += math.Exp(x[r*v+j] - m)
		}
		k.lse[r] = m + math.Log(s)
		sum += k.lse[r] - x[r*v+int(t)]
	}
	out[0] = 0
	if k.count > 0 {
		out[0] = sum / float64(k.count)
	}
	return nil
}

func (k *ceRef) backward(in [][]float64, dout []float64, din [][]float64) error {
	x, dx, v := in[0], din[0], k.v
	clear(dx)
	if k.count == 0 {
		return nil
	}
	scale := dout[0] / float64(k.count)
	for r, t := range k.idx {
		if t == IgnoreIndex {
			continue
		}
		for j := 0; j < v; j++ {
			dx[r*v+j] = scale * math.Exp(x[r*v+j]-k.lse[r])
		}
		dx[r*v+int(t)] -= scale
	}
	return nil
}
