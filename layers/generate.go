package layers

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/mambago/mamba/internal/rng"
)

// Sampling chooses each next token from the logits.
//
// Temperature 0 is greedy decoding (the lowest id among the maximal logits).
// Otherwise the logits are divided by Temperature, cut to the TopK largest
// (0: no cut), then to the smallest most-likely set whose probability
// reaches TopP (1, or the zero value 0: no cut), renormalised and sampled
// with a SplitMix64 stream seeded by Seed. Only ids below Config.VocabSize
// are candidates (the padding rows of the embedding are never produced).
// Validate refuses a negative or non-finite temperature, a negative TopK and
// a TopP outside [0, 1].
type Sampling struct {
	Temperature float64
	TopK        int
	TopP        float64
	Seed        uint64
}

// Validate reports the first field out of its range.
func (s Sampling) Validate() error {
	switch {
	case math.IsNaN(s.Temperature) || math.IsInf(s.Temperature, 0) || s.Temperature < 0:
		return fmt.Errorf("sampling: temperature must be a finite number ≥ 0 (0 = greedy), got %g", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("sampling: top-k must be ≥ 0, got %d", s.TopK)
	case math.IsNaN(s.TopP) || s.TopP < 0 || s.TopP > 1:
		return fmt.Errorf("sampling: top-p must be in [0, 1], got %g", s.TopP)
	}
	return nil
}

// sampler holds the scratch of one Sampling so that drawing does not allocate.
type sampler struct {
	s     Sampling
	r     *rng.Rand
	order []int32
	p     []float64
}

func newSampler(s Sampling, vocab int) *sampler {
	return &sampler{s: s, r: newRNG(s.Seed, "sampling"), order: make([]int32, vocab), p: make([]float64, vocab)}
}

// next draws a token id from one row of logits (the first len(order) ids).
func (sp *sampler) next(logits []float32) int32 {
	V := len(sp.order)
	logits = logits[:V]
	if sp.s.Temperature == 0 {
		best := int32(0)
		for i, v := range logits {
			if v > logits[best] {
				best = int32(i)
			}
		}
		return best
	}
	for i := range sp.order {
		sp.order[i] = int32(i)
	}
	slices.SortStableFunc(sp.order, func(a, b int32) int { return cmp.Compare(logits[b], logits[a]) })
	keep := V
	if sp.s.TopK > 0 && sp.s.TopK < keep {
		keep = sp.s.TopK
	}
	top := float64(logits[sp.order[0]])
	var sum float64
	for i := 0; i < keep; i++ {
		sp.p[i] = math.Exp((float64(logits[sp.order[i]]) - top) / sp.s.Temperature)
		sum += sp.p[i]
	}
	if sp.s.TopP > 0 && sp.s.TopP < 1 {
		var c float64
		for i := 0; i < keep; i++ {
			c += sp.p[i] / sum
			if c >= sp.s.TopP {
				keep = i + 1
				break
			}
		}
		sum = 0
		for i := 0; i < keep; i++ {
			sum += sp.p[i]
		}
	}
	u := sp.r.Float64() * sum
	for i := 0; i < keep; i++ {
		u -= sp.p[i]
		if u < 0 {
			return sp.order[i]
		}
	}
	return sp.order[keep-1]
}

// Generator is the recurrent inference of a model: the Mamba's Decoder (a
// state of fixed size) or the Transformer++'s LlamaDecoder (a key/value
// cache). Prefill feeds (Batch, L) tokens, Step one per row; both return the
// next-token logits of every row, (Batch, PaddedVocab), valid until the next
// call. Advance moves the rows on without computing (for timing a step at a
// position), Close stops the generator's goroutines.
type Generator interface {
	Prefill(tokens []int32, L int) ([]float32, error)
	Step(tokens []int32) ([]float32, error)
	Advance(n int) error
	Pos() int
	Batch() int
	Close()
}

// Generate continues batch prompts (prompt is (batch, L), row-major) by n
// tokens each and returns the new tokens, (batch, n). The prompt goes
// through the parallel scan (Prefill), each new token through one recurrent
// Step.
func (m *Model) Generate(prompt []int32, batch, n int, s Sampling) ([]int32, error) {
	return generate(m, prompt, batch, n, s)
}

// NewGenerator returns a Decoder for batch rows; a Mamba's state does not
// grow, so capacity only has to be positive.
func (m *Model) NewGenerator(batch, capacity int) (Generator, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("decoder: capacity must be at least 1, got %d", capacity)
	}
	d, err := m.NewDecoder(batch)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// generate continues the prompts with a generator of m with room for them
// and the new tokens.
func generate(m LM, prompt []int32, batch, n int, s Sampling) ([]int32, error) {
	if err := checkGenerate(prompt, batch, n, s); err != nil {
		return nil, err
	}
	L := len(prompt) / batch
	d, err := m.NewGenerator(batch, L+max(n-1, 0))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return GenerateWith(m.Config(), d, prompt, batch, n, s)
}

// checkGenerate refuses a sampling, a prompt or a count Generate cannot use.
func checkGenerate(prompt []int32, batch, n int, s Sampling) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if batch < 1 || len(prompt)%batch != 0 || len(prompt) == 0 {
		return fmt.Errorf("generate: prompt of %d ids does not split into %d non-empty rows", len(prompt), batch)
	}
	L := len(prompt) / batch
	switch {
	case n < 0:
		return fmt.Errorf("generate: number of new tokens must be ≥ 0, got %d", n)
	case n > (math.MaxInt-L)/batch:
		return fmt.Errorf("generate: %d rows of %d + %d tokens overflow a count (see Config.GenerationBytes)", batch, L, n)
	}
	return nil
}

// GenerateWith is Generate on the generator d of a model of config cfg (one
// on another device, for instance), which has batch rows at position 0 and
// room for the prompt and n−1 more tokens.
func GenerateWith(cfg Config, d Generator, prompt []int32, batch, n int, s Sampling) ([]int32, error) {
	if err := checkGenerate(prompt, batch, n, s); err != nil {
		return nil, err
	}
	logits, err := d.Prefill(prompt, len(prompt)/batch)
	if err != nil {
		return nil, err
	}
	V := cfg.PaddedVocab()
	sp := newSampler(s, cfg.VocabSize)
	out := make([]int32, batch*n)
	next := make([]int32, batch)
	for i := 0; i < n; i++ {
		for r := range next {
			next[r] = sp.next(logits[r*V : (r+1)*V])
			out[r*n+i] = next[r]
		}
		if i+1 < n {
			if logits, err = d.Step(next); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
