package layers

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/internal/testutil"
)

// benchModel is the benchmark model of the issue: vocabulary 256, d_model
// 256, 4 layers, d_state 16, expand 2.
func benchModel(b *testing.B) *Model {
	b.Helper()
	autograd.UseBLAS()
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer = 256, 256, 4
	m, err := New(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkTrainStep is one forward and backward pass of batch 8 × 512
// tokens.
func BenchmarkTrainStep(b *testing.B) { benchTrainStep(b, benchModel(b)) }

// BenchmarkLlamaTrainStep is BenchmarkTrainStep for the Transformer++ of
// configs/bench-transformer.json (d_model 256, 2 layers of 4 heads, d_ff 682,
// vocabulary 256).
func BenchmarkLlamaTrainStep(b *testing.B) { benchTrainStep(b, benchLlama(b)) }

// benchLlama is the Transformer++ of configs/bench-transformer.json.
func benchLlama(b *testing.B) *Llama {
	b.Helper()
	autograd.UseBLAS()
	c := DefaultConfig()
	c.Arch, c.VocabSize, c.DModel, c.NLayer, c.NHead, c.DFF = ArchTransformer, 256, 256, 2, 4, 682
	m, err := NewLlama(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// benchTrainStep times training steps of m on batch 8 × 512 tokens. cpu-ms/step
// is the process's CPU time per step: on a shared machine the measure of the
// work, where wall time counts the waiting too.
func benchTrainStep(b *testing.B, m LM) {
	batch, L := 8, 512
	tr, err := m.Compile(batch, L)
	if err != nil {
		b.Fatal(err)
	}
	ids := randomIDs(batch*L, 256, 1)
	tg := shiftedTargets(ids, batch, L)
	if _, err := tr.Step(ids, tg, nil); err != nil {
		b.Fatal(err)
	}
	cpu0, _ := testutil.CPUTime()
	start := time.Now()
	for b.Loop() {
		if _, err := tr.Step(ids, tg, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch*L)/time.Since(start).Seconds(), "tokens/s")
	if cpu1, ok := testutil.CPUTime(); ok {
		b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/float64(b.N), "cpu-ms/step")
	}
}

// BenchmarkDecode is recurrent generation, one Step per token per row.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			d, err := m.NewDecoder(batch)
			if err != nil {
				b.Fatal(err)
			}
			tok := randomIDs(batch, 256, 2)
			b.ReportAllocs()
			cpu0, _ := testutil.CPUTime()
			start := time.Now()
			for b.Loop() {
				if _, err := d.Step(tok); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "tokens/s")
			if cpu1, ok := testutil.CPUTime(); ok {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N*batch), "cpu-ns/token")
			}
		})
	}
}

// BenchmarkLlamaDecode is key/value-cache generation of the Transformer++ of
// configs/bench-transformer.json, one Step per token per row after a 16-token prompt, at batch 1
// and 16 (the cache grows by one position per step; b.N is bounded by its capacity, 4096).
func BenchmarkLlamaDecode(b *testing.B) {
	m := benchLlama(b)
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			d, err := m.NewDecoder(batch, 16+4096)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			if _, err := d.Prefill(randomIDs(batch*16, 256, 1), 16); err != nil {
				b.Fatal(err)
			}
			tok := randomIDs(batch, 256, 2)
			b.ReportAllocs()
			cpu0, _ := testutil.CPUTime()
			start := time.Now()
			n := 0
			for b.Loop() {
				if d.Pos() == d.Capacity() {
					d.Reset()
					if err := d.Advance(16); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := d.Step(tok); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n*batch)/time.Since(start).Seconds(), "tokens/s")
			if cpu1, ok := testutil.CPUTime(); ok {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(n*batch), "cpu-ns/token")
			}
		})
	}
}

// BenchmarkDecodeAt times one Step (batch 1) after the state has been
// advanced to a position by chunked Prefill: the cost must not depend on
// the position.
func BenchmarkDecodeAt(b *testing.B) {
	m := benchModel(b)
	for _, pos := range []int{1, 1000, 100000} {
		var once sync.Once
		var d *Decoder
		b.Run(fmt.Sprintf("pos=%d", pos), func(b *testing.B) {
			once.Do(func() {
				var err error
				if d, err = m.NewDecoder(1); err != nil {
					b.Fatal(err)
				}
				const chunk = 1000
				for d.Pos() < pos {
					n := min(chunk, pos-d.Pos())
					if _, err := d.Prefill(randomIDs(n, 256, uint64(d.Pos())), n); err != nil {
						b.Fatal(err)
					}
				}
			})
			tok := []int32{7}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Step(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
