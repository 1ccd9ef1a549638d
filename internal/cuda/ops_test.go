package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// twice runs f twice and checks that the two results are bitwise equal (f poisons its outputs).
func twice(t *testing.T, label string, f func() map[string][]float64) map[string][]float64 {
	t.Helper()
	a := f()
	sameBits(t, label+" twice", a, f())
	return a
}

func TestCUDAOpen(t *testing.T) {
	d := gpu(t)
	i := d.Info()
	t.Logf("%+v", i)
	if i.Name == "" || i.Multiprocessors < 1 || i.MemoryBytes < 1 || i.Image == "" || i.BLASVersion < 1 {
		t.Errorf("incomplete device info %+v", i)
	}
}

func TestCUDARMSNorm(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 1))
	for _, sh := range [][2]int{{3, 8}, {37, 100}, {300, 768}, {9, 4096}} {
		rows, dim, eps := sh[0], sh[1], 1e-5
		t.Run(fmt.Sprintf("%dx%d", rows, dim), func(t *testing.T) {
			x, w, dy := normals(r, rows*dim, 1), normals(r, dim, 1), normals(r, rows*dim, 1)
			k, err := d.NewRMSNorm(rows, dim, eps)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			in := []Buffer{f32(t, d, x), f32(t, d, w)}
			got := twice(t, "RMSNorm", func() map[string][]float64 {
				y, dx, dw := poisoned(t, d, rows*dim), poisoned(t, d, rows*dim), poisoned(t, d, dim)
				if err := k.Forward(in, y); err != nil {
					t.Fatal(err)
				}
				if err := k.Backward(in, f32(t, d, dy), []Buffer{dx, dw}); err != nil {
					t.Fatal(err)
				}
				return map[string][]float64{"y": host(t, d, y), "dx": host(t, d, dx), "dw": host(t, d, dw)}
			})
			dx, dw := rmsNormGradRef(x, w, dy, rows, dim, eps)
			closeAll(t, "RMSNorm", got, map[string][]float64{"y": rmsNormRef(x, w, rows, dim, eps), "dx": dx, "dw": dw}, 1e-5)
		})
	}
}

func TestCUDAConv1d(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 2))
	for _, c := range []Conv1dConfig{
		{Batch: 2, Len: 100, Channels: 70, Width: 4, Bias: true, SiLU: true},
		{Batch: 1, Len: 1, Channels: 1, Width: 1},
		{Batch: 3, Len: 130, Channels: 33, Width: 7, SiLU: true},
		{Batch: 2, Len: 64, Channels: 300, Width: 3, Bias: true},
		{Batch: 2, Len: 90, Channels: 40, Width: 4, Bias: true, SiLU: true, Reset: true},
		{Batch: 1, Len: 50, Channels: 20, Width: 16, Bias: true, SiLU: true},
		{Batch: 2, Len: 150, Channels: 9, Width: 7, SiLU: true, Reset: true},
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			n := c.Batch * c.Len * c.Channels
			x, w, dy := normals(r, n, 1), normals(r, c.Channels*c.Width, 0.5), normals(r, n, 1)
			var bias []float64
			var mask []byte
			in := []Buffer{f32(t, d, x), f32(t, d, w)}
			if c.Bias {
				bias = normals(r, c.Channels, 0.5)
				in = append(in, f32(t, d, bias))
			}
			if c.Reset {
				mask = make([]byte, c.Batch*c.Len)
				for range 6 {
					mask[r.IntN(len(mask))] = 1
				}
				for b := range c.Batch { // a document start just before the second block of dw partials
					if c.Len > convSteps+c.Width {
						mask[b*c.Len+convSteps-c.Width/2] = 1
					}
				}
				in = append(in, devBuf(t, d, mask))
			}
			k, err := d.NewConv1d(c)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			got := twice(t, "Conv1d", func() map[string][]float64 {
				y, dx, dw := poisoned(t, d, n), poisoned(t, d, n), poisoned(t, d, c.Channels*c.Width)
				din := []Buffer{dx, dw}
				if c.Bias {
					din = append(din, poisoned(t, d, c.Channels))
				}
				if err := k.Forward(in, y); err != nil {
					t.Fatal(err)
				}
				if err := k.Backward(in, f32(t, d, dy), din); err != nil {
					t.Fatal(err)
				}
				m := map[string][]float64{"y": host(t, d, y), "dx": host(t, d, dx), "dw": host(t, d, dw)}
				if c.Bias {
					m["db"] = host(t, d, din[2])
				}
				return m
			})
			dx, dw, db := convGradRef(c, x, w, bias, dy, mask)
			want := map[string][]float64{"y": convRef(c, x, w, bias, mask), "dx": dx, "dw": dw}
			if c.Bias {
				want["db"] = db
			}
			closeAll(t, "Conv1d", got, want, 1e-5)
		})
	}
}

func TestCUDAElementwise(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 3))
	for _, n := range []int{1, 1000, 300001} {
		x, z, dy := normals(r, n, 1), normals(r, n, 2), normals(r, n, 1)
		gate, err := d.NewGate(n)
		if err != nil {
			t.Fatal(err)
		}
		in := []Buffer{f32(t, d, x), f32(t, d, z)}
		got := twice(t, "Gate", func() map[string][]float64 {
			y, dx, dz := poisoned(t, d, n), poisoned(t, d, n), poisoned(t, d, n)
			if err := gate.Forward(in, y); err != nil {
				t.Fatal(err)
			}
			if err := gate.Backward(in, f32(t, d, dy), []Buffer{dx, dz}); err != nil {
				t.Fatal(err)
			}
			return map[string][]float64{"y": host(t, d, y), "dx": host(t, d, dx), "dz": host(t, d, dz)}
		})
		dx, dz := gateGradRef(x, z, dy)
		closeAll(t, fmt.Sprintf("Gate n=%d", n), got, map[string][]float64{"y": gateRef(x, z), "dx": dx, "dz": dz}, 1e-5)

		add, err := d.NewAdd(n)
		if err != nil {
			t.Fatal(err)
		}
		y, da, db := poisoned(t, d, n), poisoned(t, d, n), poisoned(t, d, n)
		if err := firstErr(add.Forward(in, y), add.Backward(nil, f32(t, d, dy), []Buffer{da, db})); err != nil {
			t.Fatal(err)
		}
		sum := make([]float64, n)
		for i := range sum {
			sum[i] = float64(float32(x[i]) + float32(z[i]))
		}
		closeAll(t, fmt.Sprintf("Add n=%d", n), map[string][]float64{"y": host(t, d, y), "da": host(t, d, da), "db": host(t, d, db)},
			map[string][]float64{"y": sum, "da": dy, "db": dy}, 1e-7)
	}
	rows, w, lo, hi := 33, 40, 7, 30
	x, dy := normals(r, rows*w, 1), normals(r, rows*(hi-lo), 1)
	cols, err := d.NewColumns(rows, w, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	y, dx := poisoned(t, d, rows*(hi-lo)), poisoned(t, d, rows*w)
	if err := firstErr(cols.Forward([]Buffer{f32(t, d, x)}, y), cols.Backward(nil, f32(t, d, dy), []Buffer{dx})); err != nil {
		t.Fatal(err)
	}
	wantY, wantDx := make([]float64, rows*(hi-lo)), make([]float64, rows*w)
	for i := range rows {
		for j := lo; j < hi; j++ {
			wantY[i*(hi-lo)+j-lo] = x[i*w+j]
			wantDx[i*w+j] = dy[i*(hi-lo)+j-lo]
		}
	}
	closeAll(t, "Columns", map[string][]float64{"y": host(t, d, y), "dx": host(t, d, dx)}, map[string][]float64{"y": wantY, "dx": wantDx}, 1e-7)
}

func TestCUDALinear(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 4))
	defer d.SetMath(MathFP32)
	for _, c := range []struct {
		rows, in, out, lo, hi int
		bias                  bool
		math                  Math
		tol                   float64
	}{
		{1, 1, 1, 0, 1, false, MathFP32, 1e-6},
		{37, 20, 30, 5, 17, true, MathFP32, 1e-5},
		{512, 256, 768, 0, 768, false, MathFP32, 1e-5},
		{300, 96, 200, 100, 200, true, MathFP32, 1e-5},
		{512, 256, 768, 256, 512, true, MathTF32, 3e-3},
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			if err := d.SetMath(c.math); err != nil {
				t.Fatal(err)
			}
			n := c.hi - c.lo
			x, w, dy := normals(r, c.rows*c.in, 1), normals(r, c.out*c.in, 1), normals(r, c.rows*n, 1)
			in := []Buffer{f32(t, d, x), f32(t, d, w)}
			var bias []float64
			if c.bias {
				bias = normals(r, c.out, 1)
				in = append(in, f32(t, d, bias))
			}
			k, err := d.NewLinear(c.rows, c.in, c.out, c.lo, c.hi, c.bias)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			got := twice(t, "Linear", func() map[string][]float64 {
				y, dx, dw := poisoned(t, d, c.rows*n), poisoned(t, d, c.rows*c.in), poisoned(t, d, c.out*c.in)
				din := []Buffer{dx, dw}
				if c.bias {
					din = append(din, poisoned(t, d, c.out))
				}
				if err := firstErr(k.Forward(in, y), k.Backward(in, f32(t, d, dy), din)); err != nil {
					t.Fatal(err)
				}
				m := map[string][]float64{"y": host(t, d, y), "dx": host(t, d, dx), "dw": host(t, d, dw)}
				if c.bias {
					m["db"] = host(t, d, din[2])
				}
				return m
			})
			wsub := w[c.lo*c.in : c.hi*c.in]
			y := matmulRef(false, true, c.rows, n, c.in, x, wsub)
			want := map[string][]float64{"y": y, "dx": matmulRef(false, false, c.rows, c.in, n, dy, wsub), "dw": make([]float64, c.out*c.in)}
			copy(want["dw"][c.lo*c.in:], matmulRef(true, false, n, c.in, c.rows, dy, x))
			if c.bias {
				for i := range c.rows {
					for j := range n {
						y[i*n+j] += bias[c.lo+j]
					}
				}
				db := make([]float64, c.out)
				for i := range c.rows {
					for j := range n {
						db[c.lo+j] += dy[i*n+j]
					}
				}
				want["db"] = db
			}
			closeAll(t, "Linear", got, want, c.tol)
		})
	}
}

// bf16 rounds float32 to bfloat16 bits, to nearest even (NaN kept quiet).
func bf16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

func TestCUDABF16(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 5))
	m, n, k := 96, 80, 64
	a, b := normals(r, m*k, 1), normals(r, n*k, 1)
	a32, b32 := testutil.Convert[float32](a), testutil.Convert[float32](b)
	// Conversion: the device rounds as bf16 does.
	ha := make([]uint16, len(a32))
	for i, v := range a32 {
		ha[i] = bf16(v)
	}
	da, err := d.Alloc(2 * len(a32))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(da)
	if err := d.ToBF16(da, devBuf(t, d, a32), len(a32)); err != nil {
		t.Fatal(err)
	}
	got := make([]uint16, len(a32))
	if err := Download(d, got, da); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != ha[i] {
			t.Fatalf("ToBF16(%v) = %#x, want %#x", a32[i], got[i], ha[i])
		}
	}
	back := poisoned(t, d, len(a32))
	if err := d.FromBF16(back, da, len(a32)); err != nil {
		t.Fatal(err)
	}
	wantBack := make([]float64, len(ha))
	for i, h := range ha {
		wantBack[i] = float64(math.Float32frombits(uint32(h) << 16))
	}
	closeAll(t, "FromBF16", map[string][]float64{"x": host(t, d, back)}, map[string][]float64{"x": wantBack}, 0)
	// GEMM: C = A·Bᵀ on the bf16 values, float32 sums.
	hb := make([]uint16, len(b32))
	wantB := make([]float64, len(hb))
	for i, v := range b32 {
		hb[i] = bf16(v)
		wantB[i] = float64(math.Float32frombits(uint32(hb[i]) << 16))
	}
	c := poisoned(t, d, m*n)
	if err := d.GemmBF16(false, true, m, n, k, 1, da, k, devBuf(t, d, hb), k, 0, c, n, false); err != nil {
		t.Fatal(err)
	}
	closeAll(t, "GemmBF16", map[string][]float64{"c": host(t, d, c)}, map[string][]float64{"c": matmulRef(false, true, m, n, k, wantBack, wantB)}, 1e-5)
}

func TestCUDAGemmTransposes(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 6))
	m, n, k := 31, 17, 23
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			a, b, c0 := normals(r, m*k, 1), normals(r, k*n, 1), normals(r, m*n, 1)
			lda, ldb := k, n
			if ta {
				lda = m
			}
			if tb {
				ldb = k
			}
			c := f32(t, d, c0)
			if err := d.Gemm(ta, tb, m, n, k, 2, f32(t, d, a), lda, f32(t, d, b), ldb, 0.5, c, n); err != nil {
				t.Fatal(err)
			}
			want := matmulRef(ta, tb, m, n, k, a, b)
			for i := range want {
				want[i] = 2*want[i] + 0.5*c0[i]
			}
			closeAll(t, fmt.Sprintf("Gemm tA=%t tB=%t", ta, tb), map[string][]float64{"c": host(t, d, c)}, map[string][]float64{"c": want}, 1e-5)
		}
	}
}

func TestCUDAEmbedding(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 7))
	rows, vocab, dim := 500, 37, 130
	ids := make([]int32, rows)
	for i := range ids {
		ids[i] = int32(r.IntN(vocab - 3)) // the last ids never occur: their gradient rows are 0
	}
	table, dout := normals(r, vocab*dim, 1), normals(r, rows*dim, 1)
	k, err := d.NewEmbedding(rows, vocab, dim)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.SetIDs(ids); err != nil {
		t.Fatal(err)
	}
	in := []Buffer{f32(t, d, table)}
	got := twice(t, "Embedding", func() map[string][]float64 {
		out, dt := poisoned(t, d, rows*dim), poisoned(t, d, vocab*dim)
		if err := firstErr(k.Forward(in, out), k.Backward(nil, f32(t, d, dout), []Buffer{dt})); err != nil {
			t.Fatal(err)
		}
		return map[string][]float64{"out": host(t, d, out), "dtable": host(t, d, dt)}
	})
	wantOut, wantDt := make([]float64, rows*dim), make([]float64, vocab*dim)
	for i, id := range ids {
		for j := range dim {
			wantOut[i*dim+j] = float64(float32(table[int(id)*dim+j]))
			wantDt[int(id)*dim+j] += dout[i*dim+j]
		}
	}
	closeAll(t, "Embedding", got, map[string][]float64{"out": wantOut, "dtable": wantDt}, 1e-6)
	if err := k.SetIDs([]int32{int32(vocab)}); err == nil {
		t.Error("SetIDs accepted a wrong count")
	}
}

func TestCUDACrossEntropy(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 8))
	for _, c := range []struct {
		rows, vocab int
		ignoreAll   bool
	}{{1, 1, false}, {50, 7, false}, {64, 50280, false}, {300, 256, false}, {10, 5, true}} {
		t.Run(fmt.Sprintf("%dx%d/ignoreAll=%t", c.rows, c.vocab, c.ignoreAll), func(t *testing.T) {
			x := normals(r, c.rows*c.vocab, 3)
			targets := make([]int32, c.rows)
			for i := range targets {
				targets[i] = int32(r.IntN(c.vocab))
				if c.ignoreAll || r.IntN(5) == 0 {
					targets[i] = IgnoreIndex
				}
			}
			k, err := d.NewCrossEntropy(c.rows, c.vocab)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if err := k.SetTargets(targets); err != nil {
				t.Fatal(err)
			}
			in := []Buffer{f32(t, d, x)}
			const g = 0.7
			got := twice(t, "CrossEntropy", func() map[string][]float64 {
				loss, dx := poisoned(t, d, 1), poisoned(t, d, c.rows*c.vocab)
				if err := firstErr(k.Forward(in, loss), k.Backward(in, f32(t, d, []float64{g}), []Buffer{dx})); err != nil {
					t.Fatal(err)
				}
				return map[string][]float64{"loss": host(t, d, loss), "dx": host(t, d, dx)}
			})
			x32 := testutil.Convert[float64](testutil.Convert[float32](x))
			closeAll(t, "CrossEntropy", got, map[string][]float64{"loss": {ceRef(x32, targets, c.vocab)}, "dx": ceGradRef(x32, targets, c.vocab, g)}, 1e-5)
		})
	}
}

// TestCUDAGraph captures a forward and backward into a graph and checks that replaying it gives the
// results of running the ops directly.
func TestCUDAGraph(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 9))
	rows, dim := 64, 96
	x, w, dy := normals(r, rows*dim, 1), normals(r, dim, 1), normals(r, rows*dim, 1)
	k, err := d.NewRMSNorm(rows, dim, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	in := []Buffer{f32(t, d, x), f32(t, d, w)}
	g := f32(t, d, dy)
	y, dx, dw := poisoned(t, d, rows*dim), poisoned(t, d, rows*dim), poisoned(t, d, dim)
	run := func() error { return firstErr(k.Forward(in, y), k.Backward(in, g, []Buffer{dx, dw})) }
	if err := run(); err != nil {
		t.Fatal(err)
	}
	direct := map[string][]float64{"y": host(t, d, y), "dx": host(t, d, dx), "dw": host(t, d, dw)}
	d.SyncEach = false // no synchronisation inside a capture
	defer func() { d.SyncEach = true }()
	for _, b := range []Buffer{y, dx, dw} {
		if err := d.Fill32(b, math.Float32bits(float32(math.NaN()))); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.BeginCapture(); err != nil {
		t.Fatal(err)
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	graph, err := d.EndCapture()
	if err != nil {
		t.Fatal(err)
	}
	defer graph.Close()
	if err := firstErr(graph.Launch(), graph.Launch(), d.Sync()); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "graph replay vs direct", direct, map[string][]float64{"y": host(t, d, y), "dx": host(t, d, dx), "dw": host(t, d, dw)})
}
