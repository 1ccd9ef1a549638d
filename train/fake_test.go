package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/mambago/mamba/internal/atomicfile"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/layers"
)

// fakeModel is a tiny differentiable model with a known gradient, so the loop,
// optimizer, checkpoints and resume are tested without the Mamba graph: for each
// target position, prediction p = w[input] + b and loss = mean (p − target/V)².
type fakeModel struct {
	cfg    layers.Config
	w, b   *layers.Param
	nanAt  map[int]bool // Step calls (1-based) that return a NaN loss
	steps  int
	failAt int       // Step call that returns an error; 0 = never
	onStep func(int) // called with the 1-based Step call count
	last   []int32   // inputs of the last run
	// onRun, when set, sees the batch of every Step (train) and Eval.
	onRun func(train bool, inputs, targets []int32, resets []uint8)
}

func newFake(cfg layers.Config) *fakeModel {
	V := cfg.VocabSize
	return &fakeModel{
		cfg: cfg,
		w:   &layers.Param{Name: "backbone.w", Shape: []int{V}, Value: make([]float32, V), Grad: make([]float32, V)},
		b:   &layers.Param{Name: "backbone.b", Shape: []int{1}, Value: make([]float32, 1), Grad: make([]float32, 1), NoDecay: true},
	}
}

func (m *fakeModel) Config() layers.Config   { return m.cfg }
func (m *fakeModel) Params() []*layers.Param { return []*layers.Param{m.w, m.b} }

func (m *fakeModel) Compile(batch, seqLen int) (Stepper, error) { return m, nil }

func (m *fakeModel) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := []safetensors.Tensor{{Name: m.w.Name, Shape: m.w.Shape, F32: m.w.Value}, {Name: m.b.Name, Shape: m.b.Shape, F32: m.b.Value}}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
		return err
	}
	cj, _ := json.Marshal(m.cfg)
	return atomicfile.WriteFile(filepath.Join(dir, "config.json"), cj)
}

func (m *fakeModel) loss(inputs, targets []int32, grad bool) float64 {
	m.last = inputs
	if grad {
		clear(m.w.Grad)
		clear(m.b.Grad)
	}
	var sum float64
	n := 0
	for _, t := range targets {
		if t >= 0 {
			n++
		}
	}
	V := float32(m.cfg.VocabSize)
	for i, t := range targets {
		if t < 0 {
			continue
		}
		d := m.w.Value[inputs[i]] + m.b.Value[0] - float32(t)/V
		sum += float64(d * d)
		if grad {
			g := 2 * d / float32(n)
			m.w.Grad[inputs[i]] += g
			m.b.Grad[0] += g
		}
	}
	return sum / float64(n)
}

func (m *fakeModel) Step(inputs, targets []int32, resets []uint8) (float64, error) {
	if m.onRun != nil {
		m.onRun(true, inputs, targets, resets)
	}
	m.steps++
	if m.onStep != nil {
		m.onStep(m.steps)
	}
	if m.steps == m.failAt {
		return 0, fmt.Errorf("fake failure at call %d", m.steps)
	}
	l := m.loss(inputs, targets, true)
	if m.nanAt[m.steps] {
		return math.NaN(), nil
	}
	return l, nil
}

func (m *fakeModel) Eval(inputs, targets []int32, resets []uint8) (float64, error) {
	if m.onRun != nil {
		m.onRun(false, inputs, targets, resets)
	}
	return m.loss(inputs, targets, false), nil
}

// Logits puts 1 on the token nearest to p·V for every position of the last run.
func (m *fakeModel) Logits() []float32 {
	V := m.cfg.PaddedVocab()
	out := make([]float32, len(m.last)*V)
	for i, in := range m.last {
		p := math.Round(float64((m.w.Value[in] + m.b.Value[0]) * float32(m.cfg.VocabSize)))
		if p >= 0 && int(p) < m.cfg.VocabSize {
			out[i*V+int(p)] = 1
		}
	}
	return out
}

// fakeBackend makes fakeModels; hook, when set, edits each new model.
type fakeBackend struct{ hook func(*fakeModel) }

func (f fakeBackend) NewModel(cfg layers.Config, seed uint64) (Model, error) {
	m := newFake(cfg)
	for i := range m.w.Value {
		m.w.Value[i] = float32(math.Sin(float64(seed) + float64(i)))
	}
	if f.hook != nil {
		f.hook(m)
	}
	return m, nil
}

func (f fakeBackend) ReadConfig(dir string) (layers.Config, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return layers.Config{}, err
	}
	var cfg layers.Config
	return cfg, json.Unmarshal(raw, &cfg)
}

func (f fakeBackend) LoadModel(dir string) (Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var cfg layers.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	st, err := safetensors.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		return nil, err
	}
	m := newFake(cfg)
	for _, p := range m.Params() {
		v, _, err := st.Float32(p.Name)
		if err != nil {
			return nil, err
		}
		copy(p.Value, v)
	}
	if f.hook != nil {
		f.hook(m)
	}
	return m, nil
}

// fakeTask is a deterministic stream: target = (3·input + 1) mod V on the second
// half of each row, -1 elsewhere.
type fakeTask struct {
	id         string
	seed       uint64
	batch, len int
	vocab      int
}

func (g *fakeTask) ID() string   { return g.id }
func (g *fakeTask) Close() error { return nil }
func (g *fakeTask) Fill(step uint64, b *data.Batch) error {
	b.Shape(g.batch, g.len, false)
	x := g.seed*0x9e3779b97f4a7c15 + step*0xbf58476d1ce4e5b9
	for i := range b.Inputs {
		x ^= x >> 31
		x *= 0x94d049bb133111eb
		x += 0x632be59b
		in := int32(x>>33) % int32(g.vocab)
		b.Inputs[i] = in
		b.Targets[i] = -1
		if i%g.len >= g.len/2 {
			b.Targets[i] = (3*in + 1) % int32(g.vocab)
		}
	}
	return nil
}

func fakeData(cfg Config) (*Dataset, error) {
	mk := func(seed uint64) (data.Source, error) {
		g := &fakeTask{id: fmt.Sprintf("fake:%d:%d:%d", seed, cfg.Data.BatchSize, cfg.Data.SeqLen), seed: seed,
			batch: cfg.Data.BatchSize, len: cfg.Data.SeqLen, vocab: cfg.Data.Vocab}
		return data.NewStream(g, 0)
	}
	tr, err := mk(cfg.Run.Seed)
	if err != nil {
		return nil, err
	}
	va, err := mk(cfg.Run.Seed + 1000)
	if err != nil {
		return nil, err
	}
	return &Dataset{Train: tr, Valid: va, Accuracy: true, UnitsPerToken: 2, Unit: "byte"}, nil
}

// fakeConfig is a small, quick run of the fake model.
func fakeConfig() Config {
	c := DefaultConfig()
	c.Model.VocabSize = 8
	c.Data.Vocab = 8
	c.Data.BatchSize, c.Data.SeqLen, c.Data.EvalBatches = 4, 8, 2
	c.Optim.LR, c.Optim.WarmupSteps, c.Optim.MinLR = 0.05, 3, 0.001
	c.Run.MaxSteps, c.Run.CheckpointEvery, c.Run.EvalEvery, c.Run.LogEvery = 20, 5, 10, 1
	return c
}
