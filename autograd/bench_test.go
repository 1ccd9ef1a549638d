package autograd

import (
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Benchmarks of forward+backward at the shapes of the benchmark model
// (batch 8 × L 512 = 4096 tokens, d_model 256, d_inner 512, vocab 256), for
// the fast float32 kernel and the float64 reference; ns/elem is per element
// of the op's main input.

func benchKernel[T float](b *testing.B, k kernel[T], shapes [][]int, outLen int) {
	rng := rand.New(rand.NewPCG(1, 1))
	in, din := make([][]T, len(shapes)), make([][]T, len(shapes))
	for i, s := range shapes {
		in[i], din[i] = make([]T, size(s)), make([]T, size(s))
		for j := range in[i] {
			in[i][j] = T(rng.NormFloat64())
		}
	}
	out, dout := make([]T, outLen), make([]T, outLen)
	for j := range dout {
		dout[j] = T(rng.NormFloat64())
	}
	if p, ok := k.(preparer); ok {
		if err := p.prepare(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := k.forward(in, out); err != nil {
			b.Fatal(err)
		}
		if err := k.backward(in, dout, din); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(in[0])), "ns/elem")
}

func BenchmarkRMSNorm(b *testing.B) {
	const rows, d = 4096, 256
	shapes := [][]int{{rows, d}, {d}}
	b.Run("f32", func(b *testing.B) {
		benchKernel(b, &rmsNorm32{rows: rows, d: d, eps: 1e-5, rstd: make([]float32, rows)}, shapes, rows*d)
	})
	b.Run("ref64", func(b *testing.B) {
		benchKernel(b, &rmsNormRef{rows: rows, d: d, eps: 1e-5, rstd: make([]float64, rows)}, shapes, rows*d)
	})
}

func BenchmarkCausalConv1d(b *testing.B) {
	geo := convGeom{batch: 8, l: 512, ch: 512, k: 4, bias: true, silu: true}
	shapes := [][]int{{geo.batch * geo.l, geo.ch}, {geo.ch, geo.k}, {geo.ch}}
	b.Run("f32", func(b *testing.B) {
		benchKernel(b, newConv32(geo), shapes, geo.batch*geo.l*geo.ch)
	})
	b.Run("ref64", func(b *testing.B) { benchKernel(b, &convRef{geo}, shapes, geo.batch*geo.l*geo.ch) })
}

func benchIds(b *testing.B, n, vocab int, targets bool) *Ids {
	ids, _ := newIds(n, vocab, targets)
	rng := rand.New(rand.NewPCG(2, 2))
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(rng.IntN(vocab))
	}
	if err := ids.Set(v); err != nil {
		b.Fatal(err)
	}
	return ids
}

func BenchmarkCrossEntropy(b *testing.B) {
	const rows, vocab = 4096, 256
	t := benchIds(b, rows, vocab, true)
	shapes := [][]int{{rows, vocab}}
	b.Run("f32", func(b *testing.B) {
		benchKernel(b, &ce32{held: hold(t), v: vocab, lse: make([]float32, rows)}, shapes, 1)
	})
	b.Run("ref64", func(b *testing.B) {
		benchKernel(b, &ceRef{held: hold(t), v: vocab, lse: make([]float64, rows)}, shapes, 1)
	})
}

func BenchmarkEmbedding(b *testing.B) {
	const rows, vocab, d = 4096, 256, 256
	ids := benchIds(b, rows, vocab, false)
	shapes := [][]int{{vocab, d}} // ns/elem here is per table element; ×16 per output element
	b.Run("f32", func(b *testing.B) { benchKernel(b, &embed32{held: hold(ids), d: d}, shapes, rows*d) })
	b.Run("ref64", func(b *testing.B) { benchKernel(b, &embedRef{held: hold(ids), d: d}, shapes, rows*d) })
}

// BenchmarkRMSNormGraph is BenchmarkRMSNorm/f32 run as a graph (TapeMachine
// forward + backward of sum(y ⊙ R), RunAll + Reset): the difference is the
// graph's overhead (the Sum and ⊙ nodes included).
func BenchmarkRMSNormGraph(b *testing.B) {
	const rows, d = 4096, 256
	r := newRig(b, tensor.Float32, [][]int{{rows, d}, {d}}, 1, rmsNormApply(1e-5))
	rng := rand.New(rand.NewPCG(3, 3))
	for i, s := range r.shapes {
		if err := gorgonia.Let(r.in[i], toValue(tensor.Float32, s, randn(rng, size(s), 1))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := r.m.RunAll(); err != nil {
			b.Fatal(err)
		}
		r.m.Reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows*d), "ns/elem")
}
