package gpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mambago/mamba/internal/cuda/cudatest"
	"github.com/mambago/mamba/internal/testutil"
	"github.com/mambago/mamba/layers"
)

// decoderCases are the bench model and d768 × 24 on a GPU, small models with every option on the
// emulator.
func decoderCases() []layers.Config {
	cfg := layers.DefaultConfig()
	if !cudatest.Emulated() {
		big := cfg
		big.VocabSize, big.DModel, big.NLayer = 256, 768, 24
		cfg.VocabSize, cfg.DModel, cfg.NLayer = 256, 256, 4
		return []layers.Config{cfg, big}
	}
	cfg.VocabSize, cfg.DModel, cfg.NLayer = 20, 16, 2
	biased := cfg
	biased.Bias, biased.ConvBias, biased.DtRank, biased.DConv = true, false, 3, 2
	lti := cfg
	lti.Selective = false
	return []layers.Config{cfg, biased, lti}
}

// TestCUDADecoderMatchesCPU prefills a prompt and decodes greedily on the CPU (layers.Decoder) and
// on the GPU, at batch 1 and 3: the logits agree within 1e-4 relative L2 at every step and the
// tokens are the same. The embedding is scaled up so that the logits of a fresh model have clear
// maxima.
func TestCUDADecoderMatchesCPU(t *testing.T) {
	d := cudatest.Device(t)
	for _, cfg := range decoderCases() {
		for _, batch := range []int{1, 3} {
			t.Run(fmt.Sprintf("d%dx%d-sel%v-bias%v/batch%d", cfg.DModel, cfg.NLayer, cfg.Selective, cfg.Bias, batch), func(t *testing.T) {
				m, err := layers.New(cfg, 11)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range m.Params() {
					if p.Name == "backbone.embeddings.weight" {
						for i := range p.Value {
							p.Value[i] *= 25
						}
					}
				}
				cpu, err := m.NewDecoder(batch)
				if err != nil {
					t.Fatal(err)
				}
				defer cpu.Close()
				dev, err := NewDecoder(d, m, batch)
				if err != nil {
					t.Fatal(err)
				}
				defer dev.Close()
				r := rand.New(rand.NewPCG(3, uint64(batch)))
				const L = 7
				prompt := make([]int32, batch*L)
				for i := range prompt {
					prompt[i] = int32(r.IntN(cfg.VocabSize))
				}
				want, err := cpu.Prefill(prompt, L)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dev.Prefill(prompt, L)
				if err != nil {
					t.Fatal(err)
				}
				V := cfg.PaddedVocab()
				for step := range 12 {
					if e := testutil.RelL2(got, want); !testutil.Within(e, 1e-4) {
						t.Fatalf("step %d: logits rel L2 %.3g between GPU and CPU", step, e)
					}
					next, wantNext := make([]int32, batch), make([]int32, batch)
					for b := range batch {
						next[b] = argmaxOf(got[b*V : b*V+cfg.VocabSize])
						wantNext[b] = argmaxOf(want[b*V : b*V+cfg.VocabSize])
					}
					if !slices.Equal(next, wantNext) {
						t.Fatalf("step %d: greedy tokens %v on the GPU, %v on the CPU", step, next, wantNext)
					}
					if want, err = cpu.Step(wantNext); err != nil {
						t.Fatal(err)
					}
					if got, err = dev.Step(next); err != nil {
						t.Fatal(err)
					}
				}
				captured, why := dev.Captured()
				t.Logf("steps replay a CUDA graph: %v %v", captured, why)
				// The whole generation through layers' sampler on both decoders.
				if err := dev.Reset(); err != nil {
					t.Fatal(err)
				}
				cpu.Reset()
				greedy := layers.Sampling{Temperature: 0}
				a, err := layers.GenerateWith(cfg, cpu, prompt, batch, 10, greedy)
				if err != nil {
					t.Fatal(err)
				}
				b, err := layers.GenerateWith(cfg, dev, prompt, batch, 10, greedy)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(a, b) {
					t.Errorf("greedy generation: %v on the GPU, %v on the CPU", b, a)
				}
			})
		}
	}
}

func argmaxOf(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

func TestCUDADecoderRefusesBadInput(t *testing.T) {
	d := cudatest.Device(t)
	cfg := layers.DefaultConfig()
	cfg.VocabSize, cfg.DModel, cfg.NLayer = 20, 16, 1
	m, err := layers.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDecoder(d, m, 0); err == nil {
		t.Error("a batch of 0 was accepted")
	}
	dec, err := NewDecoder(d, m, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, ids := range [][]int32{{1}, {1, 24}, {-1, 0}} {
		if _, err := dec.Step(ids); err == nil {
			t.Errorf("Step(%v) was accepted", ids)
		}
	}
	if _, err := dec.Prefill([]int32{1, 2, 3}, 2); err == nil {
		t.Error("a prefill of 3 ids for 2 rows of 2 was accepted")
	}
}
