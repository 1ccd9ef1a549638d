package kernel

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// The benchmarks run forward + backward of the float32 kernels at the shapes
// of the benchmark model (configs/bench.json: batch 8 × 512 = 4,096 tokens,
// d_model 256, d_inner 512, K 4, N 16, vocabulary 256); ns/elem is per
// element of the main input.

func benchSpec(b *testing.B, s Spec, elems int) {
	r := rand.New(rand.NewPCG(1, 1))
	k, err := CPU{}.New(s)
	if err != nil {
		b.Fatal(err)
	}
	in := to32(normals(s)(r))
	din := alloc32(s.Inputs())
	out, dout := make([]float32, Size(s.Output())), testutil.Convert[float32](testutil.Normals(r, Size(s.Output()), 1))
	b.ReportAllocs()
	for b.Loop() {
		k.Forward(in, out)
		k.Backward(in, dout, din)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(elems), "ns/elem")
}

func benchIDs(b *testing.B, ids *IDs) *IDs {
	v := make([]int32, ids.Len())
	r := rand.New(rand.NewPCG(2, 2))
	for i := range v {
		v[i] = int32(r.IntN(ids.Vocab()))
	}
	if err := ids.Set(v); err != nil {
		b.Fatal(err)
	}
	return ids
}

func BenchmarkKernels(b *testing.B) {
	const rows, d, e, v = 4096, 256, 512, 256
	ids, _ := NewIDs(rows, v)
	tg, _ := NewTargets(rows, v)
	benchIDs(b, ids)
	benchIDs(b, tg)
	for _, c := range []struct {
		s     Spec
		elems int
	}{
		{RMSNorm{Rows: rows, Dim: d, Eps: 1e-5}, rows * d},
		{Conv1d{Batch: 8, Len: 512, Channels: e, Width: 4, Bias: true, SiLU: true}, rows * e},
		{CrossEntropy{Targets: tg, Vocab: v}, rows * v},
		{Embedding{IDs: ids, Vocab: v, Dim: d}, rows * d},
		{Gate{Rows: rows, Cols: e}, rows * e},
		{Columns{Rows: rows, Width: 48, Lo: 16, Hi: 32}, rows * 16},
		{Add{Shape: []int{rows, d}}, rows * d},
		{Linear{Rows: rows, In: d, Out: 2 * e, Lo: 0, Hi: e}, rows * d},
		{Linear{Rows: rows, In: e, Out: d, Lo: 0, Hi: d, Residual: true}, rows * e},
		{Scan{Batch: 8, Len: 512, Channels: e, State: 16, Softplus: true, D: true, Z: true, DeltaBias: true}, rows * e},
	} {
		name, _, _ := cut(c.s.String())
		b.Run(name, func(b *testing.B) { benchSpec(b, c.s, c.elems) })
	}
}

func cut(s string) (string, string, bool) {
	for i, r := range s {
		if r == '{' {
			return s[:i], s[i:], true
		}
	}
	return s, "", false
}

// BenchmarkSgemm runs products of the bench model's shapes (in_proj forward,
// its weight gradient, out_proj forward) as one BLAS call, cut into items
// (productCut) and cut into twice as many, on one core and on all: on one core
// the difference is the cost of the cut (repacking, the sum of the chunks),
// on many the cores it keeps busy. cpu-GFLOP/s counts the process's CPU time.
func BenchmarkSgemm(b *testing.B) {
	if BLAS().Lib != "openblas" {
		b.Skip("OpenBLAS is not installed")
	}
	for _, sh := range [][3]int{{4096, 512, 256}, {512, 256, 4096}, {4096, 256, 512}} {
		m, n, k := sh[0], sh[1], sh[2]
		r := rand.New(rand.NewPCG(3, 3))
		a := testutil.Convert[float32](testutil.Normals(r, m*k, 1))
		bm := testutil.Convert[float32](testutil.Normals(r, k*n, 1))
		c := make([]float32, m*n)
		for _, procs := range []int{1, runtime.GOMAXPROCS(0)} {
			for _, count := range []int{1, tileCount, 2 * tileCount} {
				tm, tn, kc := cutInto(m, n, k, count)
				p := newCutProduct(false, false, m, n, k, k, n, n, tm, tn, kc, nil)
				p.set(a, bm, c)
				ts, sums := newTasks(productTask(p)), newTasks(reduceTask(p))
				b.Run(fmt.Sprintf("%dx%dx%d/procs=%d/items=%d", m, n, k, procs, p.items()), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
					b.ReportAllocs()
					c0, cpuOK := testutil.CPUTime()
					for b.Loop() {
						runProducts(ts, sums, p)
					}
					flops := 2 * float64(m*n*k) * float64(b.N)
					b.ReportMetric(flops/float64(b.Elapsed().Nanoseconds()), "GFLOP/s")
					if c1, _ := testutil.CPUTime(); cpuOK {
						b.ReportMetric(flops/float64((c1-c0).Nanoseconds()), "cpu-GFLOP/s")
					}
				})
			}
		}
	}
}

// BenchmarkDotRows is the decoder's in_proj product of the bench model (1,024 outputs over
// k = 256) for 1 and 16 rows, by DotRows and by one Dot per output; ns/mac per
// multiply-add.
func BenchmarkDotRows(b *testing.B) {
	const n, k = 1024, 256
	r := rand.New(rand.NewPCG(3, 3))
	w := testutil.Convert[float32](testutil.Normals(r, n*k, 1))
	for _, rows := range []int{1, 16} {
		x := testutil.Convert[float32](testutil.Normals(r, rows*k, 1))
		y := make([]float32, rows*n)
		b.Run(fmt.Sprintf("DotRows/rows%d", rows), func(b *testing.B) {
			for b.Loop() {
				DotRows(y, n, x, rows, w, k, n, false)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows*n*k), "ns/mac")
		})
		b.Run(fmt.Sprintf("Dot/rows%d", rows), func(b *testing.B) {
			for b.Loop() {
				for j := range n {
					for i := range rows {
						y[i*n+j] = Dot(x[i*k:(i+1)*k], w[j*k:(j+1)*k])
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows*n*k), "ns/mac")
		})
	}
}
