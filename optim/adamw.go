package optim

import (
	"errors"
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/parallel"
)

// Param is one trainable tensor as the optimizer sees it. Value and Grad alias the
// model's storage: Step updates Value in place and reads Grad.
type Param struct {
	Name    string
	Value   []float32
	Grad    []float32
	NoDecay bool
}

// blockSize is the number of elements one goroutine handles at a time. It is fixed, so
// the partition (and the order of the norm's partial sums) never depends on the workers.
const blockSize = 1 << 14

type block struct{ p, lo, hi int }

// AdamW is a fused AdamW optimizer over float32 parameters with float64 global-norm
// computation. It is not safe for concurrent use.
type AdamW struct {
	cfg    Config
	params []Param
	m, v   [][]float32 // first and second moments, shaped like params
	t      int64       // updates taken

	blocks  []block
	partial []float64 // per-block Σ grad², reduced in block order

	// Per-call arguments read by the blocks' items.
	phase                    int
	scale, c1, c2, eps, keep float32
	job                      parallel.Job
	workers                  int // 0 = GOMAXPROCS
}

const (
	phaseNorm = iota
	phaseUpdate
)

// New returns an optimizer for params with fresh (zero) moments. Every param needs a
// unique name and len(Grad) == len(Value).
func New(params []Param, cfg Config) (*AdamW, error) {
	return newAdamW(params, cfg, 0)
}

func newAdamW(params []Param, cfg Config, workers int) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, errors.New("optim: no parameters to optimize")
	}
	o := &AdamW{cfg: cfg, params: params, m: make([][]float32, len(params)), v: make([][]float32, len(params))}
	seen := map[string]bool{}
	for i, p := range params {
		if seen[p.Name] {
			return nil, fmt.Errorf("optim: duplicate parameter name %q", p.Name)
		}
		seen[p.Name] = true
		if len(p.Grad) != len(p.Value) {
			return nil, fmt.Errorf("optim: parameter %q has %d values but %d gradients", p.Name, len(p.Value), len(p.Grad))
		}
		o.m[i] = make([]float32, len(p.Value))
		o.v[i] = make([]float32, len(p.Value))
		for lo := 0; lo < len(p.Value); lo += blockSize {
			o.blocks = append(o.blocks, block{i, lo, min(lo+blockSize, len(p.Value))})
		}
	}
	o.partial = make([]float64, len(o.blocks))
	o.workers = workers
	return o, nil
}

// Params returns the parameters the optimizer updates, in order.
func (o *AdamW) Params() []Param { return o.params }

// Updates returns how many updates have been taken (t in the bias corrections).
func (o *AdamW) Updates() int64 { return o.t }

// GradNorm returns the global L2 norm of all gradients, √(Σ grad²), summed in float64
// in a fixed order. It is NaN or +Inf when a gradient is not finite.
func (o *AdamW) GradNorm() float64 {
	o.run(phaseNorm)
	var s float64
	for _, x := range o.partial {
		s += x
	}
	return math.Sqrt(s)
}

// Step takes one AdamW update with learning rate lr on gradients multiplied by scale
// (the clip factor, see ClipScale).
func (o *AdamW) Step(lr float64, scale float32) {
	o.t++
	t := float64(o.t)
	bc1 := 1 - math.Pow(o.cfg.Beta1, t)
	bc2 := 1 - math.Pow(o.cfg.Beta2, t)
	o.scale = scale
	o.c1 = float32(lr / bc1)
	o.c2 = float32(1 / math.Sqrt(bc2))
	o.eps = float32(o.cfg.Eps)
	o.keep = float32(1 - lr*o.cfg.WeightDecay)
	o.run(phaseUpdate)
}

// run executes phase over all blocks in parallel.
func (o *AdamW) run(phase int) {
	o.phase = phase
	o.job.Run((*blocks)(o), len(o.blocks), o.workers)
}

// blocks is an AdamW seen as the body of its parallel loop (parallel.Body).
type blocks AdamW

// Item runs the current phase on block i.
func (bs *blocks) Item(_, i int) {
	o := (*AdamW)(bs)
	b := o.blocks[i]
	p := &o.params[b.p]
	if o.phase == phaseNorm {
		o.partial[i] = sumSquares(p.Grad[b.lo:b.hi])
		return
	}
	keep := o.keep
	if p.NoDecay {
		keep = 1
	}
	o.update(p.Value[b.lo:b.hi], p.Grad[b.lo:b.hi], o.m[b.p][b.lo:b.hi], o.v[b.p][b.lo:b.hi], keep)
}

// sumSquares returns Σ g_i² in float64, over four interleaved partial sums (a fixed
// order, so the result depends only on g) to break the chain of dependent additions.
func sumSquares(g []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(g); i += 4 {
		x0, x1, x2, x3 := float64(g[i]), float64(g[i+1]), float64(g[i+2]), float64(g[i+3])
		s0 += x0 * x0
		s1 += x1 * x1
		s2 += x2 * x2
		s3 += x3 * x3
	}
	for ; i < len(g); i++ {
		s0 += float64(g[i]) * float64(g[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// update is the fused AdamW pass over one block (see the package doc):
//
//	for i := range p { g := s·grad[i]; p[i] *= keep; m[i] = β1·m[i] + (1−β1)·g;
//	    v[i] = β2·v[i] + (1−β2)·g²; p[i] −= c1·m[i]/(√v[i]·c2 + ε) }
//
// with keep = 1 − lr·λ, c1 = lr/(1−β1^t), c2 = 1/√(1−β2^t). The constants are folded
// so the loop does the fewest operations: (1−β1)·s, (1−β2)·s², c1/c2 and ε/c2.
func (o *AdamW) update(p, grad, m, v []float32, keep float32) {
	b1, b2 := float32(o.cfg.Beta1), float32(o.cfg.Beta2)
	s := o.scale
	a1, a2 := (1-b1)*s, (1-b2)*s*s
	c, eps := o.c1/o.c2, o.eps/o.c2
	grad, m, v = grad[:len(p)], m[:len(p)], v[:len(p)]
	for i := range p {
		g := grad[i]
		mi := b1*m[i] + a1*g
		vi := b2*v[i] + a2*g*g
		m[i], v[i] = mi, vi
		p[i] = p[i]*keep - c*mi/(float32(math.Sqrt(float64(vi)))+eps)
	}
}

// State is the resumable state of an AdamW: the update count and both moments,
// listed in the order of the parameters and keyed by their names.
type State struct {
	Updates int64
	Names   []string
	M, V    [][]float32
}

// State returns the optimizer's state. The slices alias the optimizer's moments.
func (o *AdamW) State() State {
	s := State{Updates: o.t, Names: make([]string, len(o.params)), M: o.m, V: o.v}
	for i, p := range o.params {
		s.Names[i] = p.Name
	}
	return s
}

// Restore copies s into the optimizer. Names and sizes must match its parameters.
func (o *AdamW) Restore(s State) error {
	if len(s.Names) != len(o.params) || len(s.M) != len(o.params) || len(s.V) != len(o.params) {
		return fmt.Errorf("optim: state has %d parameters, optimizer has %d", len(s.Names), len(o.params))
	}
	if s.Updates < 0 {
		return fmt.Errorf("optim: state has a negative update count %d", s.Updates)
	}
	for i, p := range o.params {
		if s.Names[i] != p.Name {
			return fmt.Errorf("optim: state parameter %d is %q, optimizer expects %q", i, s.Names[i], p.Name)
		}
		if len(s.M[i]) != len(p.Value) || len(s.V[i]) != len(p.Value) {
			return fmt.Errorf("optim: state of %q has %d/%d moments, parameter has %d values", p.Name, len(s.M[i]), len(s.V[i]), len(p.Value))
		}
	}
	for i := range o.params {
		copy(o.m[i], s.M[i])
		copy(o.v[i], s.V[i])
	}
	o.t = s.Updates
	return nil
}
