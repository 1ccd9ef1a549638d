package gpu

import (
	"errors"
	"fmt"

	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/layers"
)

// Decoder generates with a layers.Model on the device, one token per sequence at a time (a
// layers.Generator): per block
// the RMSNorm, the in-projection (cuBLAS), the conv step (cuda.BlockStep.Conv), the x-projection
// (cuBLAS), Δ with the scan's step and the gate (cuda.BlockStep.SSM), and the out-projection added
// to the residual stream (cuBLAS), then the final norm and the LM head: six launches a block, seven
// with biases. The conv and SSM states stay on the device between tokens; after the first token the
// whole step is a captured CUDA graph (MAMBA_CUDA_GRAPH=0: launch by launch), so a token costs one
// copy of the ids in, one graph launch and one copy of the logits out. Products are float32. Prefill
// feeds a prompt through the same step, token by token.
//
// A Decoder reads the model's parameters when it is made and at Reset; it is not safe for
// concurrent use.
type Decoder struct {
	d                               *cuda.Device
	m                               *layers.Model
	cfg                             layers.Config
	batch                           int
	pos                             int
	values                          cuda.Buffer
	p                               map[string]cuda.Buffer // parameters by name
	ids                             cuda.Buffer            // (batch) int32
	bufs                            []cuda.Buffer          // every activation and state, freed by Close
	h, n, xz, u, dbc, y, hf, logits cuda.Buffer
	conv, ssm                       []cuda.Buffer // per block: conv state (batch, K−1, E), SSM state (batch, E, N)
	norm, normF                     *cuda.RMSNorm
	step                            *cuda.BlockStep
	graph                           *cuda.Graph
	graphErr                        error
	host                            []float32
}

// NewDecoder uploads m's parameters and returns a decoder of batch sequences at position 0.
func NewDecoder(d *cuda.Device, m *layers.Model, batch int) (dec *Decoder, err error) {
	cfg := m.Config()
	if batch < 1 {
		return nil, fmt.Errorf("decoder: batch must be at least 1, got %d", batch)
	}
	B, D, E, N, K, R, V := batch, cfg.DModel, cfg.DInner(), cfg.DState, cfg.DConv, cfg.Rank(), cfg.PaddedVocab()
	dec = &Decoder{d: d, m: m, cfg: cfg, batch: batch, p: map[string]cuda.Buffer{}, host: make([]float32, B*V)}
	defer func() {
		if err != nil {
			dec.close()
			dec = nil
		}
	}()
	ps := m.Params()
	total := 0
	for _, p := range ps {
		total += (4*p.Size() + 255) / 256 * 256
	}
	if dec.values, err = d.Alloc(total); err != nil {
		return nil, fmt.Errorf("decoder: parameters: %w", err)
	}
	off := 0
	for _, p := range ps {
		dec.p[p.Name] = dec.values.Slice(off, off+4*p.Size())
		off += (4*p.Size() + 255) / 256 * 256
	}
	alloc := func(n int) cuda.Buffer {
		if err != nil {
			return cuda.Buffer{}
		}
		var b cuda.Buffer
		if b, err = d.Alloc32(n); err == nil {
			dec.bufs = append(dec.bufs, b)
		}
		return b
	}
	dec.ids = alloc(B)
	dec.h, dec.n, dec.xz, dec.u, dec.y = alloc(B*D), alloc(B*D), alloc(2*B*E), alloc(B*E), alloc(B*E)
	dec.dbc, dec.hf, dec.logits = alloc(B*(R+2*N)), alloc(B*D), alloc(B*V)
	for range cfg.NLayer {
		dec.conv = append(dec.conv, alloc(B*max(1, K-1)*E))
		dec.ssm = append(dec.ssm, alloc(B*E*N))
	}
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if dec.norm, err = d.NewRMSNorm(B, D, cfg.NormEps); err != nil {
		return nil, err
	}
	if dec.normF, err = d.NewRMSNorm(B, D, cfg.NormEps); err != nil {
		return nil, err
	}
	if dec.step, err = d.NewBlockStep(cuda.StepConfig{Batch: B, Channels: E, Width: K, Rank: R, State: N, Selective: cfg.Selective}); err != nil {
		return nil, err
	}
	for _, name := range dec.names(0) {
		if _, ok := dec.p[name]; !ok && name != "" {
			return nil, fmt.Errorf("decoder: the model has no parameter %s", name)
		}
	}
	if err := dec.Reset(); err != nil {
		return nil, err
	}
	return dec, nil
}

// names returns the parameter names of block l that the step reads ("" for an absent one).
func (dec *Decoder) names(l int) []string {
	pre := fmt.Sprintf("backbone.layers.%d.", l)
	mx := pre + "mixer."
	opt := func(on bool, name string) string {
		if on {
			return name
		}
		return ""
	}
	c := dec.cfg
	return []string{pre + "norm.weight", mx + "in_proj.weight", opt(c.Bias, mx+"in_proj.bias"), mx + "conv1d.weight",
		opt(c.ConvBias, mx+"conv1d.bias"), opt(c.Selective, mx+"x_proj.weight"), opt(c.Selective, mx+"dt_proj.weight"),
		mx + "dt_proj.bias", mx + "A_log", mx + "D", opt(!c.Selective, mx+"B"), opt(!c.Selective, mx+"C"),
		mx + "out_proj.weight", opt(c.Bias, mx+"out_proj.bias")}
}

// Reset returns every sequence to position 0 (zero states) and reads the parameters again.
func (dec *Decoder) Reset() error {
	dec.pos = 0
	for _, p := range dec.m.Params() {
		if err := cuda.Upload(dec.d, dec.p[p.Name], p.Value); err != nil {
			return err
		}
	}
	for l := range dec.conv {
		if err := errors.Join(dec.d.Zero(dec.conv[l]), dec.d.Zero(dec.ssm[l])); err != nil {
			return err
		}
	}
	return nil
}

// Pos is the number of tokens consumed since the last Reset.
func (dec *Decoder) Pos() int { return dec.pos }

// Batch is the number of sequences.
func (dec *Decoder) Batch() int { return dec.batch }

// Advance moves the position on by n tokens without computing (the state is the recurrence's and
// does not depend on the position; for timing a step at a position).
func (dec *Decoder) Advance(n int) error {
	if n < 0 {
		return fmt.Errorf("decoder: cannot advance %d positions", n)
	}
	dec.pos += n
	return nil
}

// Step feeds one token per sequence and returns the next-token logits, (batch, PaddedVocab),
// valid until the next call.
func (dec *Decoder) Step(tokens []int32) ([]float32, error) {
	if len(tokens) != dec.batch {
		return nil, fmt.Errorf("decoder: got %d token ids, want %d", len(tokens), dec.batch)
	}
	V := dec.cfg.PaddedVocab()
	for i, t := range tokens {
		if t < 0 || int(t) >= V {
			return nil, fmt.Errorf("decoder: token id %d at index %d is outside the vocabulary [0, %d)", t, i, V)
		}
	}
	if err := cuda.Upload(dec.d, dec.ids, tokens); err != nil {
		return nil, err
	}
	if dec.graph != nil {
		if err := dec.graph.Launch(); err != nil {
			return nil, err
		}
	} else if err := dec.launch(); err != nil {
		return nil, err
	}
	if err := cuda.Download(dec.d, dec.host, dec.logits); err != nil {
		return nil, err
	}
	dec.pos++
	if dec.graph == nil && dec.graphErr == nil {
		dec.capture()
	}
	return dec.host, nil
}

// Prefill feeds L tokens per sequence (tokens is (batch, L), row-major) one step at a time and
// returns the logits after each sequence's last token, valid until the next call.
func (dec *Decoder) Prefill(tokens []int32, L int) ([]float32, error) {
	if L < 1 || len(tokens) != dec.batch*L {
		return nil, fmt.Errorf("decoder: prefill of %d ids is not %d rows of %d ≥ 1 tokens", len(tokens), dec.batch, L)
	}
	col := make([]int32, dec.batch)
	var logits []float32
	for t := range L {
		for b := range col {
			col[b] = tokens[b*L+t]
		}
		var err error
		if logits, err = dec.Step(col); err != nil {
			return nil, err
		}
	}
	return logits, nil
}

// capture records a step's launches into a graph for the next steps; a refusal leaves them
// launched one by one.
func (dec *Decoder) capture() {
	if dec.graphErr = graphOff(); dec.graphErr != nil {
		return
	}
	if dec.graphErr = dec.d.BeginCapture(); dec.graphErr != nil {
		return
	}
	err := dec.launch()
	g, endErr := dec.d.EndCapture()
	if err = errors.Join(err, endErr); err != nil {
		if g != nil {
			g.Close()
		}
		dec.graphErr = err
		return
	}
	dec.graph = g
}

// launch issues one step's work: the embedding of the ids, every block, the head.
func (dec *Decoder) launch() error {
	d, c := dec.d, dec.cfg
	B, D, E, N, R, V := dec.batch, c.DModel, c.DInner(), c.DState, c.Rank(), c.PaddedVocab()
	if err := d.SetMath(cuda.MathFP32); err != nil {
		return err
	}
	emb := dec.p["backbone.embeddings.weight"]
	if err := d.Gather(dec.h, emb, dec.ids, B, V, D); err != nil {
		return err
	}
	for l := range c.NLayer {
		nm := dec.names(l)
		w := func(i int) cuda.Buffer {
			if nm[i] == "" {
				return cuda.Buffer{}
			}
			return dec.p[nm[i]]
		}
		in := cuda.StepIn{XZ: dec.xz, ConvW: w(3), ConvB: w(4), DtW: w(6), DtB: w(7), ALog: w(8), D: w(9),
			B: w(10), C: w(11), ConvState: dec.conv[l], U: dec.u, H: dec.ssm[l], Y: dec.y}
		if c.Selective {
			in.DBC = dec.dbc
		}
		if c.DConv == 1 {
			in.ConvState = cuda.Buffer{}
		}
		err := errors.Join(dec.norm.Forward([]cuda.Buffer{dec.h, w(0)}, dec.n),
			d.Gemm(false, true, B, 2*E, D, 1, dec.n, D, w(1), D, 0, dec.xz, 2*E))
		if err == nil && c.Bias {
			err = d.AddBias(dec.xz, w(2), B, 2*E)
		}
		if err == nil {
			err = dec.step.Conv(in)
		}
		if err == nil && c.Selective {
			err = d.Gemm(false, true, B, R+2*N, E, 1, dec.u, E, w(5), E, 0, dec.dbc, R+2*N)
		}
		if err == nil {
			err = errors.Join(dec.step.SSM(in), d.Gemm(false, true, B, D, E, 1, dec.y, E, w(12), E, 1, dec.h, D))
		}
		if err == nil && c.Bias {
			err = d.AddBias(dec.h, w(13), B, D)
		}
		if err != nil {
			return fmt.Errorf("decoder: block %d: %w", l, err)
		}
	}
	return errors.Join(dec.normF.Forward([]cuda.Buffer{dec.h, dec.p["backbone.norm_f.weight"]}, dec.hf),
		d.Gemm(false, true, B, V, D, 1, dec.hf, D, emb, D, 0, dec.logits, V))
}

// Captured reports whether steps replay a CUDA graph, and if not, why.
func (dec *Decoder) Captured() (bool, error) { return dec.graph != nil, dec.graphErr }

// Close frees the decoder's device memory (layers.Generator's Close; a failure to free leaves the
// device's memory to its context and is not reported).
func (dec *Decoder) Close() { dec.close() }

func (dec *Decoder) close() error {
	var errs []error
	if dec.graph != nil {
		errs = append(errs, dec.graph.Close())
	}
	for _, k := range []*cuda.RMSNorm{dec.norm, dec.normF} {
		if k != nil {
			errs = append(errs, k.Close())
		}
	}
	for _, b := range append(dec.bufs, dec.values) {
		errs = append(errs, dec.d.Free(b))
	}
	dec.graph, dec.norm, dec.normF, dec.bufs, dec.values = nil, nil, nil, nil, cuda.Buffer{}
	return errors.Join(errs...)
}
