package kernel

import (
	"errors"
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/parallel"
)

// CrossEntropy is the mean negative log-likelihood of the targets under
// softmax(logits), a scalar:
//
//	loss = (1/n)·Σ_{r: t_r ≠ −1} (logsumexp(x[r]) − x[r, t_r]),  n = #{r: t_r ≠ −1}
//
// for logits x (Targets.Len(), Vocab), with the stable logsumexp
// m + log Σ_j exp(x_j − m), m = max_j x_j. Targets come from NewTargets (or
// NewIDs) with a vocabulary of at most Vocab. With no target left the loss
// and its gradient are 0.
type CrossEntropy struct {
	Targets *IDs
	Vocab   int
}

func (s CrossEntropy) rows() int {
	if s.Targets == nil {
		return 0
	}
	return s.Targets.Len()
}

func (s CrossEntropy) String() string {
	return fmt.Sprintf("CrossEntropy{rows=%d,vocab=%d}", s.rows(), s.Vocab)
}
func (s CrossEntropy) Inputs() [][]int { return [][]int{{s.rows(), s.Vocab}} }
func (s CrossEntropy) Output() []int   { return []int{} }

func (s CrossEntropy) Validate() error {
	switch {
	case s.Targets == nil:
		return errors.New("kernel: CrossEntropy: Targets is nil")
	case s.Targets.Vocab() > s.Vocab:
		return fmt.Errorf("kernel: CrossEntropy: targets vocabulary %d is larger than the %d logits per row", s.Targets.Vocab(), s.Vocab)
	}
	return validate(s, "vocab", s.Vocab)
}

// Ready reports an error if the targets were never Set.
func (s CrossEntropy) Ready() error { return s.Targets.Ready() }

// ceRows is the number of rows in one parallel block of the float32 kernel.
const ceRows = 16

func (s CrossEntropy) CPUKernel() Kernel[[]float32] {
	nb := blocks(s.rows(), ceRows)
	k := &ce32{s: s, held: hold(s.Targets), lse: make([]float32, s.rows()), part: make([]float64, nb)}
	k.fwd, k.bwd = k.forwardItem, k.backwardItem
	return k
}

// ce32 is the float32 kernel. Row losses are summed per block in float64,
// then over blocks in order. The backward recomputes the softmax from the
// saved logsumexp instead of keeping (rows, V) probabilities.
type ce32 struct {
	s CrossEntropy
	held
	lse      []float32 // (rows) logsumexp of each row, saved for backward
	tmp      []float32 // (workers, V) e^(x − max) of one row
	part     []float64 // (blocks) per-block sums of row losses
	job      parallel.Job
	fwd, bwd items
	x, dx    []float32
	scale    float32
}

func (k *ce32) Forward(in [][]float32, out []float32) {
	k.take()
	nb := blocks(len(k.idx), ceRows)
	k.tmp = grow(k.tmp, parallel.Workers(nb, 0)*k.s.Vocab)
	k.x = in[0]
	run(&k.job, k.fwd, nb)
	k.x = nil
	out[0] = 0
	if k.count > 0 {
		total := 0.0
		for _, p := range k.part {
			total += p
		}
		out[0] = float32(total / float64(k.count))
	}
}

func (k *ce32) forwardItem(w, b int) {
	v := k.s.Vocab
	e, sum := k.tmp[w*v:][:v], 0.0
	lo, hi := span(b, ceRows, len(k.idx))
	for r := lo; r < hi; r++ {
		t := k.idx[r]
		if t == IgnoreIndex {
			continue
		}
		xr := k.x[r*v : (r+1)*v]
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
	k.part[b] = sum
}

// Backward: ∂loss/∂x[r,j] = (softmax(x[r])_j − [j = t_r])/n for counted rows,
// 0 for ignored rows; times the upstream scalar g.
func (k *ce32) Backward(in [][]float32, dy []float32, din [][]float32) {
	if din[0] == nil {
		return
	}
	k.scale = 0
	if k.count > 0 {
		k.scale = dy[0] / float32(k.count)
	}
	k.x, k.dx = in[0], din[0]
	run(&k.job, k.bwd, blocks(len(k.idx), ceRows))
	k.x, k.dx = nil, nil
}

func (k *ce32) backwardItem(_, b int) {
	v := k.s.Vocab
	lo, hi := span(b, ceRows, len(k.idx))
	for r := lo; r < hi; r++ {
		xr, dr := k.x[r*v:(r+1)*v], k.dx[r*v:(r+1)*v]
		t := k.idx[r]
		if t == IgnoreIndex {
			clear(dr)
			continue
		}
		math32.ExpAffine(dr, xr, 1, -k.lse[r])
		for j := range dr {
			dr[j] *= k.scale
		}
		dr[t] -= k.scale
	}
}

func (s CrossEntropy) ReferenceKernel() Kernel[[]float64] {
	return &ceRef{s: s, held: hold(s.Targets), lse: make([]float64, s.rows())}
}

// ceRef is the float64 reference.
type ceRef struct {
	s CrossEntropy
	held
	lse []float64
}

func (k *ceRef) Forward(in [][]float64, out []float64) {
	k.take()
	x, v, sum := in[0], k.s.Vocab, 0.0
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
}

func (k *ceRef) Backward(in [][]float64, dy []float64, din [][]float64) {
	x, dx, v := in[0], din[0], k.s.Vocab
	if dx == nil {
		return
	}
	clear(dx)
	if k.count == 0 {
		return
	}
	scale := dy[0] / float64(k.count)
	for r, t := range k.idx {
		if t == IgnoreIndex {
			continue
		}
		for j := 0; j < v; j++ {
			dx[r*v+j] = scale * math.Exp(x[r*v+j]-k.lse[r])
		}
		dx[r*v+int(t)] -= scale
	}
}
