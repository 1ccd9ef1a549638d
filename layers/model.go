package layers

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/rng"
)

// Param is one learned tensor, named as in transformers' MambaForCausalLM
// state dict.
type Param struct {
	Name    string    // e.g. backbone.layers.0.mixer.A_log
	Shape   []int     // row-major
	Value   []float32 // the model's storage; compiled graphs alias it, so in-place updates are seen by every Trainer
	Grad    []float32 // d loss / d Value, overwritten by Trainer.Step
	NoDecay bool      // excluded from weight decay (A_log, D, norms, biases, LTI B and C)
}

// Size is the number of elements, the product of Shape.
func (p *Param) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// mixer holds one residual block's parameters: the pre-norm weight and the
// Mamba mixer. Optional tensors are nil when the config leaves them out.
type mixer struct {
	norm         *Param // (D)
	inW, inB     *Param // (2E, D), (2E)
	convW, convB *Param // (E, 1, K), (E)
	xW           *Param // (R+2N, E); selective only
	dtW          *Param // (E, R); selective only
	dtB          *Param // (E): Δ bias, added inside the scan
	aLog, d      *Param // (E, N), (E)
	bLTI, cLTI   *Param // (N), (N); LTI ablation only
	outW, outB   *Param // (D, E), (D)
}

// Model is a Mamba language model: embedding, NLayer residual Mamba blocks,
// final RMSNorm and an LM head tied to the embedding.
type Model struct {
	cfg    Config
	emb    *Param // (V, D), also the LM head
	blocks []mixer
	normF  *Param // (D)
	params []*Param
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Params lists every parameter once, in a fixed order (embedding, then block
// by block, then the final norm). The tied LM head is the embedding.
func (m *Model) Params() []*Param { return m.params }

// NumParams is the number of learned scalars of a model of this config, of
// either architecture, counted without laying the model out; math.MaxInt
// when the count overflows (which Validate refuses).
func (c Config) NumParams() int {
	if n, ok := c.numParams(); ok {
		return n
	}
	return math.MaxInt
}

// EmbeddingParams is the number of parameters of the vocabulary embedding
// and of an untied LM head, V·D each: what scaling laws leave out of N
// (train.IsEmbedding names them).
func (c Config) EmbeddingParams() int {
	n := c.PaddedVocab() * c.DModel
	if c.IsTransformer() && !c.TieEmbeddings {
		n *= 2
	}
	return n
}

// New builds a model initialised as mamba_ssm does, deterministically from
// seed:
//
//	embedding                  N(0, 0.02²)
//	in_proj.weight, x_proj     U(±1/√fan_in)            (PyTorch Linear default)
//	conv1d.weight, .bias       U(±1/√K)                 (PyTorch Conv1d default)
//	dt_proj.weight             U(±dt_scale/√R)
//	dt_proj.bias               softplus⁻¹(Δ0), Δ0 = max(exp(U(ln dt_min, ln dt_max)), dt_init_floor)
//	A_log                      log(1..N) in every row
//	D, norm weights            1
//	out_proj.weight            U(±1/√E) / √n_layer
//	linear biases              0
//
// Each parameter draws from its own stream seeded by (seed, name).
func New(cfg Config, seed uint64) (*Model, error) {
	if cfg.Arch != ArchMamba {
		return nil, fmt.Errorf("model config: arch %q is not %q", cfg.Arch, ArchMamba)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := layout(cfg)
	m.allocate()
	m.initialise(seed)
	return m, nil
}

// layout creates the parameter set of cfg: names, shapes and flags, without
// storage.
func layout(cfg Config) *Model {
	D, E, N, K, R, V := cfg.DModel, cfg.DInner(), cfg.DState, cfg.DConv, cfg.Rank(), cfg.PaddedVocab()
	m := &Model{cfg: cfg}
	add := func(name string, noDecay bool, shape ...int) *Param {
		p := &Param{Name: name, Shape: shape, NoDecay: noDecay}
		m.params = append(m.params, p)
		return p
	}
	m.emb = add("backbone.embeddings.weight", false, V, D)
	m.blocks = make([]mixer, cfg.NLayer)
	for i := range m.blocks {
		b := &m.blocks[i]
		pre := fmt.Sprintf("backbone.layers.%d.", i)
		mx := pre + "mixer."
		b.norm = add(pre+"norm.weight", true, D)
		b.inW = add(mx+"in_proj.weight", false, 2*E, D)
		if cfg.Bias {
			b.inB = add(mx+"in_proj.bias", true, 2*E)
		}
		b.convW = add(mx+"conv1d.weight", false, E, 1, K)
		if cfg.ConvBias {
			b.convB = add(mx+"conv1d.bias", true, E)
		}
		if cfg.Selective {
			b.xW = add(mx+"x_proj.weight", false, R+2*N, E)
			b.dtW = add(mx+"dt_proj.weight", false, E, R)
		} else {
			b.bLTI = add(mx+"B", true, N)
			b.cLTI = add(mx+"C", true, N)
		}
		b.dtB = add(mx+"dt_proj.bias", true, E)
		b.aLog = add(mx+"A_log", true, E, N)
		b.d = add(mx+"D", true, E)
		b.outW = add(mx+"out_proj.weight", false, D, E)
		if cfg.Bias {
			b.outB = add(mx+"out_proj.bias", true, D)
		}
	}
	m.normF = add("backbone.norm_f.weight", true, D)
	return m
}

// allocate gives every parameter zeroed Value and Grad storage.
func (m *Model) allocate() {
	for _, p := range m.params {
		p.Value = make([]float32, p.Size())
		p.Grad = make([]float32, p.Size())
	}
}

func (m *Model) initialise(seed uint64) {
	cfg := m.cfg
	E, K, R := cfg.DInner(), cfg.DConv, cfg.Rank()
	fill := func(p *Param, f func(r *rng.Rand, k int) float64) {
		if p == nil {
			return
		}
		r := newRNG(seed, p.Name)
		for k := range p.Value {
			p.Value[k] = float32(f(r, k))
		}
	}
	constant := func(c float64) func(*rng.Rand, int) float64 { return func(*rng.Rand, int) float64 { return c } }
	uniform := func(a float64) func(*rng.Rand, int) float64 {
		return func(r *rng.Rand, _ int) float64 { return r.Uniform(a) }
	}

	fill(m.emb, func(r *rng.Rand, _ int) float64 { return 0.02 * r.Normal() })
	lo, hi := math.Log(cfg.DtMin), math.Log(cfg.DtMax)
	for i := range m.blocks {
		b := &m.blocks[i]
		fill(b.norm, constant(1))
		fill(b.inW, uniform(1/math.Sqrt(float64(cfg.DModel))))
		fill(b.inB, constant(0))
		fill(b.convW, uniform(1/math.Sqrt(float64(K))))
		fill(b.convB, uniform(1/math.Sqrt(float64(K))))
		fill(b.xW, uniform(1/math.Sqrt(float64(E))))
		fill(b.dtW, uniform(cfg.DtScale/math.Sqrt(float64(R))))
		fill(b.dtB, func(r *rng.Rand, _ int) float64 {
			dt := math.Max(math.Exp(lo+r.Float64()*(hi-lo)), cfg.DtInitFloor)
			return dt + math.Log(-math.Expm1(-dt)) // softplus⁻¹(dt)
		})
		fill(b.aLog, func(_ *rng.Rand, k int) float64 { return math.Log(float64(k%cfg.DState + 1)) })
		fill(b.d, constant(1))
		fill(b.bLTI, constant(1))
		fill(b.cLTI, func(r *rng.Rand, _ int) float64 { return r.Normal() / math.Sqrt(float64(cfg.DState)) })
		fill(b.outW, uniform(1/math.Sqrt(float64(E))/math.Sqrt(float64(cfg.NLayer))))
		fill(b.outB, constant(0))
	}
	fill(m.normF, constant(1))
}
