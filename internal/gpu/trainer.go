package gpu

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gorgonia.org/gorgonia"

	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/optim"
)

// Trainer trains a layers.Model on the device: its compiled graphs run there (Executor), and the
// parameters, their gradients, the gradient sums of accumulated micro-batches and the optimizer's
// float32 master weights and moments stay there. A step sends the token ids and targets and brings
// back the loss; GradNorm brings back the gradient norm; Logits, Pull and OptimizerState bring back
// what the host asks for. Push and Pull copy the parameters between Param.Value and the device.
//
// A Trainer is not safe for concurrent use.
type Trainer struct {
	d             *cuda.Device
	be            *cuda.Backend
	m             *layers.Model
	batch, seqLen int
	values, grads cuda.Buffer   // every parameter's values and gradients, each parameter 256-byte aligned
	pv, pg        []cuda.Buffer // views of values and grads, parallel to Model.Params
	train, eval   *graphRun     // eval is built at the first Eval
	last          *graphRun
	logits        []float32
	haveLogits    bool
	accum, micro  int         // micro-batches per update, and those added so far
	sum           cuda.Buffer // the gradient sum while accumulating (accum > 1)
	opt           *cuda.AdamW
	loss          [1]float32
	prof          *Profile
	ev            [2]*cuda.Event // around the optimizer's kernels while profiling
}

// graphRun is one compiled graph with its executor.
type graphRun struct {
	g *layers.DeviceGraph
	x *Executor
}

// NewTrainer uploads m's parameters to the device of be and compiles its training graph for batches
// of batch sequences of seqLen tokens, with be's precision.
func NewTrainer(be *cuda.Backend, m *layers.Model, batch, seqLen int) (t *Trainer, err error) {
	t = &Trainer{d: be.Device(), be: be, m: m, batch: batch, seqLen: seqLen, accum: 1}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	ps := m.Params()
	offs := make([]int, len(ps)+1)
	for i, p := range ps {
		offs[i+1] = offs[i] + (4*p.Size()+255)/256*256
	}
	if t.values, err = t.d.Alloc(offs[len(ps)]); err != nil {
		return nil, fmt.Errorf("gpu: parameters: %w", err)
	}
	if t.grads, err = t.d.Alloc(offs[len(ps)]); err != nil {
		return nil, fmt.Errorf("gpu: gradients: %w", err)
	}
	if err := errors.Join(t.d.Zero(t.values), t.d.Zero(t.grads)); err != nil {
		return nil, err
	}
	for i, p := range ps {
		t.pv = append(t.pv, t.values.Slice(offs[i], offs[i]+4*p.Size()))
		t.pg = append(t.pg, t.grads.Slice(offs[i], offs[i]+4*p.Size()))
	}
	if err := t.Push(); err != nil {
		return nil, err
	}
	if t.train, err = t.compile(true); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Trainer) compile(grads bool) (*graphRun, error) {
	g, err := t.m.DeviceGraph(t.batch, t.seqLen, grads)
	if err != nil {
		return nil, err
	}
	bind := map[*gorgonia.Node]cuda.Buffer{}
	for i, n := range g.Params {
		bind[n] = t.pv[i]
		if grads {
			bind[g.Grads[i]] = t.pg[i]
		}
	}
	x, err := NewExecutor(t.be, g.Steps, bind, g.Loss, g.Logits)
	if err != nil {
		return nil, err
	}
	return &graphRun{g: g, x: x}, nil
}

// Push copies every Param.Value to the device.
func (t *Trainer) Push() error {
	for i, p := range t.m.Params() {
		if err := cuda.Upload(t.d, t.pv[i], p.Value); err != nil {
			return err
		}
	}
	return nil
}

// Pull copies the device's parameters into every Param.Value.
func (t *Trainer) Pull() error {
	for i, p := range t.m.Params() {
		if err := cuda.Download(t.d, p.Value, t.pv[i]); err != nil {
			return err
		}
	}
	return nil
}

// PullGrads copies the gradients of the last Step (or the accumulated mean after GradNorm) into
// every Param.Grad.
func (t *Trainer) PullGrads() error {
	for i, p := range t.m.Params() {
		if err := cuda.Download(t.d, p.Grad, t.pg[i]); err != nil {
			return err
		}
	}
	return nil
}

// Accumulate makes the gradients of the next k Steps add up; GradNorm replaces them by their mean
// (optim.Accumulator's arithmetic) before measuring them.
func (t *Trainer) Accumulate(k int) error {
	if k < 1 {
		return fmt.Errorf("gpu: accumulate %d micro-batches: want at least 1", k)
	}
	if k > 1 && t.sum.Nil() {
		var err error
		if t.sum, err = t.d.Alloc(t.grads.Bytes()); err != nil {
			return fmt.Errorf("gpu: gradient sums: %w", err)
		}
	}
	t.accum, t.micro = k, 0
	return nil
}

// Step runs the forward and backward pass on one batch ((batch, seqLen) ids and targets, row-major,
// targets −1 ignored; resets nil or the packed documents' starts, as for layers.Trainer.Step),
// leaves d loss / d parameters on the device and returns the loss.
func (t *Trainer) Step(inputs, targets []int32, resets []uint8) (float64, error) {
	loss, err := t.run(t.train, inputs, targets, resets)
	if err != nil {
		return 0, fmt.Errorf("step: %w", err)
	}
	if t.accum > 1 {
		if t.micro == 0 {
			err = t.d.Copy(t.sum, t.grads)
		} else {
			err = t.d.AddTo(t.sum, t.grads)
		}
		if err != nil {
			return 0, fmt.Errorf("step: %w", err)
		}
		t.micro++
	}
	if t.train.x.graph == nil && t.train.x.graphErr == nil && t.train.x.prof == nil {
		if err := t.train.x.Capture(); err != nil {
			return 0, fmt.Errorf("step: %w", err)
		}
	}
	return loss, nil
}

// Eval runs the forward pass only and returns the loss.
func (t *Trainer) Eval(inputs, targets []int32, resets []uint8) (float64, error) {
	if t.eval == nil {
		var err error
		if t.eval, err = t.compile(false); err != nil {
			return 0, fmt.Errorf("eval: %w", err)
		}
	}
	loss, err := t.run(t.eval, inputs, targets, resets)
	if err != nil {
		return 0, fmt.Errorf("eval: %w", err)
	}
	return loss, nil
}

func (t *Trainer) run(r *graphRun, inputs, targets []int32, resets []uint8) (float64, error) {
	if err := r.g.IDs.Set(inputs); err != nil {
		return 0, fmt.Errorf("inputs: %w", err)
	}
	if err := r.g.Targets.Set(targets); err != nil {
		return 0, fmt.Errorf("targets: %w", err)
	}
	if err := r.g.Resets.Set(resets); err != nil {
		return 0, fmt.Errorf("resets: %w", err)
	}
	t.last, t.haveLogits = nil, false
	if err := r.x.Run(); err != nil {
		return 0, err
	}
	if err := cuda.Download(t.d, t.loss[:], r.x.Buffer(r.g.Loss)); err != nil {
		return 0, err
	}
	t.last = r
	return float64(t.loss[0]), nil
}

// Logits returns the logits of the last Step or Eval, (batch·seqLen, PaddedVocab) row-major, copied
// from the device at the first call after the run; nil before any run or when the copy failed (the
// next run reports the device's error).
func (t *Trainer) Logits() []float32 {
	if t.last == nil {
		return nil
	}
	if !t.haveLogits {
		b := t.last.x.Buffer(t.last.g.Logits)
		if t.logits == nil {
			t.logits = make([]float32, b.Len32())
		}
		if cuda.Download(t.d, t.logits, b) != nil {
			return nil
		}
		t.haveLogits = true
	}
	return t.logits
}

// Optimize makes Update take AdamW steps on the parameters named in st.Names (a subset of the
// model's, in the model's order), starting from st's moments and update count (those of an
// optim.AdamW over the same parameters: optim.AdamW.State).
func (t *Trainer) Optimize(cfg optim.Config, st optim.State) error {
	if t.opt != nil {
		return errors.New("gpu: the optimizer is set already")
	}
	index := map[string]int{}
	for i, p := range t.m.Params() {
		index[p.Name] = i
	}
	if len(st.M) != len(st.Names) || len(st.V) != len(st.Names) {
		return fmt.Errorf("gpu: optimizer state of %d names, %d and %d moments", len(st.Names), len(st.M), len(st.V))
	}
	var ps []cuda.AdamParam
	for _, name := range st.Names {
		i, ok := index[name]
		if !ok {
			return fmt.Errorf("gpu: the model has no parameter %q", name)
		}
		p := t.m.Params()[i]
		ps = append(ps, cuda.AdamParam{Name: name, Value: t.pv[i], Grad: t.pg[i], NoDecay: p.NoDecay})
	}
	o, err := t.d.NewAdamW(ps, cfg)
	if err != nil {
		return err
	}
	m, v := o.Moments()
	for i := range ps {
		if err := errors.Join(cuda.Upload(t.d, m[i], st.M[i]), cuda.Upload(t.d, v[i], st.V[i])); err != nil {
			o.Close()
			return err
		}
	}
	if err := o.SetUpdates(st.Updates); err != nil {
		o.Close()
		return err
	}
	t.opt = o
	return nil
}

// GradNorm finishes the accumulation (the gradients become the mean of the micro-batches'), then
// computes the global gradient norm and the clip scale on the device and returns the norm.
func (t *Trainer) GradNorm() (float64, error) {
	if t.opt == nil {
		return 0, errors.New("gpu: no optimizer (Optimize)")
	}
	if t.accum > 1 && t.micro > 0 {
		if err := t.d.Scale(t.grads, t.sum, 1/float32(t.micro)); err != nil {
			return 0, err
		}
		t.micro = 0
	}
	err := t.timed("AdamW gradient norm", t.opt.GradNorm)
	if err != nil {
		return 0, err
	}
	return t.opt.Norm()
}

// timed runs launch, adding its device time to the profile when there is one.
func (t *Trainer) timed(name string, launch func() error) error {
	if t.prof == nil {
		return launch()
	}
	if err := errors.Join(t.ev[0].Record(), launch(), t.ev[1].Record()); err != nil {
		return err
	}
	ms, err := t.ev[1].Since(t.ev[0])
	if err == nil {
		t.prof.add(name, time.Duration(ms*float64(time.Millisecond)))
	}
	return err
}

// Update takes one AdamW step with learning rate lr and the clip scale of the last GradNorm
// (optim.ClipScale of its norm).
func (t *Trainer) Update(lr float64) error {
	if t.opt == nil {
		return errors.New("gpu: no optimizer (Optimize)")
	}
	if math.IsNaN(lr) || math.IsInf(lr, 0) {
		return fmt.Errorf("gpu: learning rate %v", lr)
	}
	return errors.Join(t.timed("AdamW update", func() error { return t.opt.Step(lr) }), t.d.Err())
}

// OptimizerState copies the device's moments into st.M and st.V (of Optimize's names and sizes)
// and sets st.Updates.
func (t *Trainer) OptimizerState(st *optim.State) error {
	if t.opt == nil {
		return errors.New("gpu: no optimizer (Optimize)")
	}
	m, v := t.opt.Moments()
	if len(st.M) != len(m) || len(st.V) != len(v) {
		return fmt.Errorf("gpu: optimizer state of %d and %d moments, the device has %d", len(st.M), len(st.V), len(m))
	}
	for i := range m {
		if err := errors.Join(cuda.Download(t.d, st.M[i], m[i]), cuda.Download(t.d, st.V[i], v[i])); err != nil {
			return err
		}
	}
	st.Updates = t.opt.Updates()
	return nil
}

// SetProfile makes later training steps and optimizer calls add the device time of each kind of op
// to p (nil: stop); profiled steps launch op by op instead of replaying the captured graph.
func (t *Trainer) SetProfile(p *Profile) error {
	t.prof = p
	if p != nil && t.ev[0] == nil {
		for i := range t.ev {
			var err error
			if t.ev[i], err = t.d.NewEvent(); err != nil {
				return err
			}
		}
	}
	return t.train.x.SetProfile(p)
}

// Executor returns the executor of the training graph.
func (t *Trainer) Executor() *Executor { return t.train.x }

// Close frees the trainer's device memory.
func (t *Trainer) Close() error {
	var errs []error
	for _, r := range []*graphRun{t.train, t.eval} {
		if r != nil {
			errs = append(errs, r.x.Close())
		}
	}
	if t.opt != nil {
		errs = append(errs, t.opt.Close())
	}
	for _, e := range t.ev {
		if e != nil {
			errs = append(errs, e.Close())
		}
	}
	for _, b := range []cuda.Buffer{t.values, t.grads, t.sum} {
		errs = append(errs, t.d.Free(b))
	}
	t.train, t.eval, t.opt = nil, nil, nil
	t.values, t.grads, t.sum = cuda.Buffer{}, cuda.Buffer{}, cuda.Buffer{}
	return errors.Join(errs...)
}
