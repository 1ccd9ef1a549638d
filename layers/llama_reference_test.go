package layers

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/internal/attention"
	"github.com/mambago/mamba/internal/testutil"
)

// llamaRef64 is a float64 transcription of transformers' LlamaForCausalLM forward as it runs on a
// float64 model, with no code shared with the float32 paths it checks beyond the float64
// references of internal/attention (attention.Reference, attention.RotateReference).
//
// transformers keeps two float32 steps inside a float64 model, and the transcription does too:
// the rotary tables (cos and sin computed in float32, see attention.Rope), and LlamaRMSNorm, which
// casts the hidden state to float32 for the mean square, the reciprocal root and the product, and
// only the weight multiply in float64 (rmsTorch).
type llamaRef64 struct {
	cfg   Config
	w     map[string][]float64
	lanes int // vector width of PyTorch's float32 sum emulated by rmsTorch
}

// llamaRefFromFile reads the config and float64 weights of a transformers directory.
func llamaRefFromFile(t *testing.T, dir string, lanes int) *llamaRef64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseLlamaHFConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(filepath.Join(dir, weightsFile))
	if err != nil {
		t.Fatal(err)
	}
	r := &llamaRef64{cfg: cfg, w: map[string][]float64{}, lanes: lanes}
	for _, p := range llamaLayout(cfg).params {
		if r.w[p.Name], _, err = f.Float64(p.Name); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// llamaRefFromModel widens m's float32 parameters.
func llamaRefFromModel(m *Llama, lanes int) *llamaRef64 {
	r := &llamaRef64{cfg: m.cfg, w: map[string][]float64{}, lanes: lanes}
	for _, p := range m.params {
		r.w[p.Name] = testutil.Convert[float64](p.Value)
	}
	return r
}

func (r *llamaRef64) p(layer int, name string) []float64 {
	if layer < 0 {
		return r.w["model."+name]
	}
	return r.w[fmt.Sprintf("model.layers.%d.%s", layer, name)]
}

// head is the LM head matrix: lm_head.weight, or the embedding when tied.
func (r *llamaRef64) head() []float64 {
	if r.cfg.TieEmbeddings {
		return r.w["model.embed_tokens.weight"]
	}
	return r.w["lm_head.weight"]
}

// torchSum32 is PyTorch's float32 sum of a contiguous row on the CPU (aten/src/ATen/native/cpu/
// SumKernel.cpp, vectorized_inner_sum): whole vectors of `lanes` floats are summed lane-wise by
// row_sum (four interleaved accumulators, each a cascade of four levels of 16 steps), the four
// are folded into the first, then the scalar tail and the lanes are added in order to 0. With
// fewer elements than lanes the same runs on scalars (lanes = 1).
func torchSum32(x []float32, lanes int) float32 {
	if len(x) < lanes {
		lanes = 1
	}
	nv := len(x) / lanes
	vec := func(i int) []float32 { return x[i*lanes : (i+1)*lanes] }
	add := func(dst, src []float32) {
		for l := range dst {
			dst[l] += src[l]
		}
	}
	// multi_row_sum over the rows of four vectors, then row_sum's fold.
	const ilp, levels = 4, 4
	size := nv / ilp
	power := max(4, ceilLog2(size)/levels)
	step, mask := 1<<power, 1<<power-1
	var acc [levels][ilp][]float32
	for j := range acc {
		for k := range acc[j] {
			acc[j][k] = make([]float32, lanes)
		}
	}
	i := 0
	for i+step <= size {
		for range step {
			for k := range ilp {
				add(acc[0][k], vec(i*ilp+k))
			}
			i++
		}
		for j := 1; j < levels; j++ {
			for k := range ilp {
				add(acc[j][k], acc[j-1][k])
				clear(acc[j-1][k])
			}
			if i&(mask<<(j*power)) != 0 {
				break
			}
		}
	}
	for ; i < size; i++ {
		for k := range ilp {
			add(acc[0][k], vec(i*ilp+k))
		}
	}
	for j := 1; j < levels; j++ {
		for k := range ilp {
			add(acc[0][k], acc[j][k])
		}
	}
	part := acc[0]
	for v := size * ilp; v < nv; v++ {
		add(part[0], vec(v))
	}
	for k := 1; k < ilp; k++ {
		add(part[0], part[k])
	}
	var s float32
	for _, v := range x[nv*lanes:] {
		s += v
	}
	for _, v := range part[0] {
		s += v
	}
	return s
}

// ceilLog2 is ⌈log₂ n⌉ for n ≥ 1, 0 for n ≤ 1.
func ceilLog2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

// rmsTorch is LlamaRMSNorm on a float64 model: x is rounded to float32, mean(x²) and
// rsqrt(mean + ε) = 1/sqrt(·) are taken in float32, the product x·rsqrt is rounded to float32,
// and only the weight multiply is float64.
func (r *llamaRef64) rmsTorch(x []float64, rows int, w []float64) []float64 {
	D := r.cfg.DModel
	y := make([]float64, len(x))
	x32, sq := make([]float32, D), make([]float32, D)
	for i := range rows {
		for k := range D {
			x32[k] = float32(x[i*D+k])
			sq[k] = x32[k] * x32[k]
		}
		v := torchSum32(sq, r.lanes) / float32(D)
		rs := 1 / float32(math.Sqrt(float64(v+float32(r.cfg.NormEps))))
		for k := range D {
			y[i*D+k] = w[k] * float64(x32[k]*rs)
		}
	}
	return y
}

// forward returns the logits (batch·L, V) of ids (batch, L), at positions 0 … L−1.
func (r *llamaRef64) forward(t *testing.T, ids []int32, batch, L int) []float64 {
	t.Helper()
	c := r.cfg
	D, V, F, hd := c.DModel, c.PaddedVocab(), c.FF(), c.HeadSize()
	H, KV := c.NHead, c.KVHeads()
	rows := batch * L
	emb := r.p(-1, "embed_tokens.weight")
	h := make([]float64, rows*D)
	for i, id := range ids {
		copy(h[i*D:(i+1)*D], emb[int(id)*D:])
	}
	rope, err := attention.NewRope(hd, L, c.RopeTheta)
	if err != nil {
		t.Fatal(err)
	}
	pos := make([]int32, rows)
	attention.Positions(pos, batch, L, nil)
	att, err := attention.NewReference(attention.Shape{Batch: batch, Len: L, Heads: H, KVHeads: KV, HeadDim: hd}, attention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for l := range c.NLayer {
		n := r.rmsTorch(h, rows, r.p(l, "input_layernorm.weight"))
		q := lin64(n, rows, D, r.p(l, "self_attn.q_proj.weight"), H*hd, nil)
		k := lin64(n, rows, D, r.p(l, "self_attn.k_proj.weight"), KV*hd, nil)
		v := lin64(n, rows, D, r.p(l, "self_attn.v_proj.weight"), KV*hd, nil)
		for _, x := range []struct {
			x     []float64
			heads int
		}{{q, H}, {k, KV}} {
			if err := attention.RotateReference(rope, x.x, x.x, pos, x.heads, false); err != nil {
				t.Fatal(err)
			}
		}
		a := make([]float64, rows*H*hd)
		if err := att.Forward(attention.Inputs[float64]{Q: q, K: k, V: v}, a); err != nil {
			t.Fatal(err)
		}
		o := lin64(a, rows, H*hd, r.p(l, "self_attn.o_proj.weight"), D, nil)
		for i := range h {
			h[i] += o[i]
		}
		n = r.rmsTorch(h, rows, r.p(l, "post_attention_layernorm.weight"))
		g := lin64(n, rows, D, r.p(l, "mlp.gate_proj.weight"), F, nil)
		u := lin64(n, rows, D, r.p(l, "mlp.up_proj.weight"), F, nil)
		for i := range g {
			g[i] = silu64(g[i]) * u[i]
		}
		o = lin64(g, rows, F, r.p(l, "mlp.down_proj.weight"), D, nil)
		for i := range h {
			h[i] += o[i]
		}
	}
	return lin64(r.rmsTorch(h, rows, r.p(-1, "norm.weight")), rows, D, r.head(), V, nil)
}

// greedy extends prompt by n tokens, each the argmax (lowest id among ties) of the last row of a
// full forward over the tokens so far.
func (r *llamaRef64) greedy(t *testing.T, prompt []int32, n int) []int32 {
	seq := append([]int32(nil), prompt...)
	V := r.cfg.PaddedVocab()
	for range n {
		logits := r.forward(t, seq, 1, len(seq))
		last := logits[(len(seq)-1)*V:]
		best := 0
		for j := 1; j < r.cfg.VocabSize; j++ {
			if last[j] > last[best] {
				best = j
			}
		}
		seq = append(seq, int32(best))
	}
	return seq
}
