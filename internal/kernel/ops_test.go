package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

func TestRMSNorm(t *testing.T) {
	for i, s := range []RMSNorm{{3, 5, 1e-5}, {1, 1, 0.1}, {4, 2, 0.1}, {70, 33, 1e-5}, {5, 256, 1e-6}} {
		g := func(r *rand.Rand) [][]float64 {
			w := testutil.Normals(r, s.Dim, 0.5)
			for j := range w {
				w[j]++
			}
			return [][]float64{testutil.Normals(r, s.Rows*s.Dim, 1.5), w}
		}
		check(t, s, g, uint64(i), 1e-7, 1e-5)
	}
}

// TestRMSNormReference checks the reference forward against the definition
// on a hand-computed row.
func TestRMSNormReference(t *testing.T) {
	k, _ := Reference{}.New(RMSNorm{1, 2, 0.5})
	y := make([]float64, 2)
	k.Forward([][]float64{{3, 4}, {2, -1}}, y)
	// mean(x²) = 12.5, 1/sqrt(12.5+0.5) = 1/sqrt(13)
	testutil.Close(t, "RMSNorm of (3, 4)", y, []float64{6 / math.Sqrt(13), -4 / math.Sqrt(13)}, 1e-15)
}

func TestConv1d(t *testing.T) {
	for i, s := range []Conv1d{
		{Batch: 2, Len: 5, Channels: 3, Width: 4, Bias: true, SiLU: true},
		{Batch: 1, Len: 3, Channels: 2, Width: 4, SiLU: true}, // L < K
		{Batch: 3, Len: 4, Channels: 2, Width: 1, Bias: true},
		{Batch: 2, Len: 6, Channels: 1, Width: 2},
		{Batch: 2, Len: 150, Channels: 9, Width: 4, Bias: true, SiLU: true}, // pieces that end inside a sequence
		{Batch: 3, Len: 64, Channels: 5, Width: 3, SiLU: true},
		{Batch: 2, Len: 40, Channels: 45, Width: 4, Bias: true, SiLU: true}, // channels in 32-, 8- and 1-lane steps
		{Batch: 2, Len: 3, Channels: 4, Width: 4, Bias: true, SiLU: true, State: true},
		{Batch: 3, Len: 1, Channels: 5, Width: 3, SiLU: true, State: true}, // a decoder's step
		{Batch: 2, Len: 70, Channels: 6, Width: 2, State: true},
	} {
		check(t, s, normals(s), uint64(10+i), 1e-7, 1e-5)
	}
}

// TestConv1dReference checks the reference on a hand-computed case: one
// channel, K = 2, two sequences of length 2, no bias, no SiLU.
func TestConv1dReference(t *testing.T) {
	k, _ := Reference{}.New(Conv1d{Batch: 2, Len: 2, Channels: 1, Width: 2})
	y := make([]float64, 4)
	k.Forward([][]float64{{1, 2, 3, 4}, {10, 1}}, y)
	// y_t = 10·x_{t−1} + 1·x_t, with x_{−1} = 0 in each sequence
	testutil.CloseAbs(t, "conv", y, []float64{1, 12, 3, 34}, 0)
}

// TestConvStep: stepping ConvStep token by token over channel blocks gives
// bitwise what the Conv1d kernel computes for the whole sequence, and leaves
// the last K−1 inputs in the state.
func TestConvStep(t *testing.T) {
	const batch, L, ch, K = 2, 9, 37, 4
	r := rand.New(rand.NewPCG(3, 3))
	s := Conv1d{Batch: batch, Len: L, Channels: ch, Width: K, Bias: true, SiLU: true}
	in := to32([][]float64{testutil.Normals(r, batch*L*ch, 1), testutil.Normals(r, ch*K, 1), testutil.Normals(r, ch, 1)})
	k, _ := CPU{}.New(s)
	want := make([]float32, batch*L*ch)
	k.Forward(in, want)
	wt := make([]float32, K*ch)
	ConvTranspose(wt, in[1], ch, K)
	got := make([]float32, batch*L*ch)
	for b := 0; b < batch; b++ {
		state := make([]float32, (K-1)*ch)
		for tt := 0; tt < L; tt++ {
			row := (b*L + tt) * ch
			for lo := 0; lo < ch; lo += 16 {
				ConvStep(got[row:row+ch], in[0][row:row+ch], state, wt, in[2], ch, K, lo, min(ch, lo+16), true)
			}
		}
		testutil.CloseAbs(t, "state after the sequence", state, in[0][(b*L+L-K+1)*ch:(b*L+L)*ch], 0)
	}
	testutil.CloseAbs(t, "ConvStep vs the Conv1d kernel", got, want, 0)
}

func TestGate(t *testing.T) {
	for i, s := range []Gate{{3, 4}, {1, 1}, {300, 70}} {
		check(t, s, normals(s), uint64(20+i), 1e-7, 1e-6)
	}
}

func setIDs(t *testing.T, ids *IDs, r *rand.Rand, ignore float64) {
	t.Helper()
	v := make([]int32, ids.Len())
	for i := range v {
		v[i] = int32(r.IntN(ids.Vocab()))
		if ids.Targets() && r.Float64() < ignore {
			v[i] = IgnoreIndex
		}
	}
	if err := ids.Set(v); err != nil {
		t.Fatal(err)
	}
}

func TestEmbedding(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 30))
	for i, c := range []struct{ n, vocab, rows, dim int }{{6, 4, 4, 3}, {7, 3, 5, 2}, {300, 37, 40, 70}, {1, 1, 1, 1}} {
		ids, _ := NewIDs(c.n, c.vocab)
		setIDs(t, ids, r, 0)
		s := Embedding{IDs: ids, Vocab: c.rows, Dim: c.dim}
		check(t, s, normals(s), uint64(30+i), 1e-8, 1e-6)
	}
}

func TestCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(40, 40))
	for i, c := range []struct {
		n, vocab, logits int
		ignore           float64
	}{{5, 4, 6, 0.2}, {100, 257, 257, 0.1}, {33, 5, 5, 0}, {4, 3, 3, 1}} {
		tg, _ := NewTargets(c.n, c.vocab)
		setIDs(t, tg, r, c.ignore)
		s := CrossEntropy{Targets: tg, Vocab: c.logits}
		g := func(r *rand.Rand) [][]float64 { return [][]float64{testutil.Normals(r, c.n*c.logits, 3)} }
		check(t, s, g, uint64(40+i), 1e-7, 1e-5)
	}
}

func TestGEMM(t *testing.T) {
	i := 0
	for _, sh := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {300, 90, 80}, {90, 300, 80}, {700, 60, 70}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				s := GEMM{M: sh[0], N: sh[1], K: sh[2], TransA: ta, TransB: tb}
				check(t, s, normals(s), uint64(50+i), 1e-6, 1e-5)
				i++
			}
		}
	}
}

func TestLinear(t *testing.T) {
	for i, s := range []Linear{
		{Rows: 5, In: 3, Out: 4, Lo: 0, Hi: 4},
		{Rows: 6, In: 4, Out: 8, Lo: 2, Hi: 5, Bias: true},
		{Rows: 6, In: 4, Out: 8, Lo: 4, Hi: 8, Residual: true},
		{Rows: 7, In: 5, Out: 6, Lo: 1, Hi: 3, Bias: true, Residual: true},
		{Rows: 1, In: 1, Out: 1, Lo: 0, Hi: 1, Bias: true},
		{Rows: 700, In: 70, Out: 180, Lo: 90, Hi: 180, Bias: true, Residual: true}, // tiled
		{Rows: 512, In: 96, Out: 64, Lo: 0, Hi: 64},
	} {
		check(t, s, normals(s), uint64(80+i), 1e-6, 1e-5)
	}
}

func TestColumns(t *testing.T) {
	for i, s := range []Columns{{3, 5, 1, 3}, {600, 48, 16, 32}, {2, 1, 0, 1}} {
		check(t, s, normals(s), uint64(90+i), 1e-8, 0)
	}
}

func TestAdd(t *testing.T) {
	for i, s := range []Add{{[]int{3, 4}}, {[]int{5}}, {[]int{}}, {[]int{300, 70}}} {
		check(t, s, normals(s), uint64(95+i), 1e-8, 1e-7)
	}
}

func TestBroadcast(t *testing.T) {
	for i, s := range []Broadcast{{4, 3}, {1, 1}, {700, 5}} {
		check(t, s, normals(s), uint64(100+i), 1e-8, 1e-6)
	}
}

// scanGen draws scan inputs in the ranges a Mamba block produces: Δ > 0
// when there is no softplus (and no bias to shift it).
func scanGen(s Scan) gen {
	return func(r *rand.Rand) [][]float64 {
		v := normals(s)(r)
		if !s.Softplus {
			for j := range v[1] {
				v[1][j] = 0.05 + 0.3*math.Abs(v[1][j])
			}
		}
		for j := range v[2] {
			v[2][j] *= 0.5 // A_log
		}
		return v
	}
}

func TestScan(t *testing.T) {
	for i, s := range []Scan{
		{Batch: 2, Len: 5, Channels: 3, State: 4, Softplus: true, Chunk: 2, D: true, Z: true, DeltaBias: true},
		{Batch: 1, Len: 1, Channels: 2, State: 1, Softplus: true, D: true, Z: true, DeltaBias: true},
		{Batch: 3, Len: 3, Channels: 2, State: 2, Chunk: 1},
		{Batch: 2, Len: 70, Channels: 8, State: 4, Softplus: true, Chunk: 16, D: true, Z: true, DeltaBias: true},
		{Batch: 1, Len: 33, Channels: 5, State: 3},
	} {
		check(t, s, scanGen(s), uint64(110+i), 1e-6, 1e-5)
	}
}

// TestValidate: specs no kernel can run are refused by both backends, with
// an error naming the problem.
func TestValidate(t *testing.T) {
	ids, _ := NewIDs(4, 10)
	targets, _ := NewTargets(4, 10)
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{RMSNorm{Rows: 0, Dim: 4, Eps: 1e-5}, "RMSNorm: rows = 0"},
		{RMSNorm{Rows: 2, Dim: 4, Eps: 0}, "eps 0 must be positive"},
		{RMSNorm{Rows: 2, Dim: 4, Eps: math.Inf(1)}, "eps +Inf"},
		{RMSNorm{Rows: 1 << 20, Dim: 1 << 12, Eps: 1e-5}, "exceeds"},
		{Conv1d{Batch: 1, Len: 4, Channels: 2, Width: 1, State: true}, "state needs width ≥ 2"},
		{Conv1d{Batch: 1, Len: 4, Channels: -2, Width: 3}, "channels = -2"},
		{Embedding{IDs: nil, Vocab: 4, Dim: 2}, "IDs is nil"},
		{Embedding{IDs: targets, Vocab: 10, Dim: 2}, "use NewIDs"},
		{Embedding{IDs: ids, Vocab: 9, Dim: 2}, "ids vocabulary 10 is larger than the table's 9 rows"},
		{CrossEntropy{Targets: targets, Vocab: 7}, "targets vocabulary 10 is larger than the 7 logits"},
		{CrossEntropy{Vocab: 7}, "Targets is nil"},
		{Linear{Rows: 2, In: 3, Out: 4, Lo: 2, Hi: 5}, "rows [2, 5) of a weight with 4 rows"},
		{Columns{Rows: 2, Width: 4, Lo: 3, Hi: 3}, "columns [3, 3)"},
		{GEMM{M: 2, N: 0, K: 1}, "n = 0"},
		{Scan{Batch: 1, Len: 2, Channels: 3, State: 0}, "state = 0"},
		{Scan{Batch: 1, Len: 2, Channels: 3, State: 1, Chunk: -1}, "chunk -1"},
		{Gate{Rows: 1 << 30, Cols: 4}, "exceeds"},
	} {
		_, err32 := CPU{}.New(c.s)
		_, err64 := Reference{}.New(c.s)
		for _, err := range []error{err32, err64} {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want one containing %q", c.s, err, c.want)
			}
		}
	}
}

func TestIDsErrors(t *testing.T) {
	ids, _ := NewIDs(3, 10)
	targets, _ := NewTargets(3, 10)
	if err := ids.Ready(); err == nil {
		t.Error("Ready before Set: no error")
	}
	for _, c := range []struct {
		ids  *IDs
		v    []int32
		want string
	}{
		{ids, []int32{1, 2}, "got 2 ids, want 3"},
		{ids, []int32{1, 10, 2}, "id 10 at position 1 is outside the vocabulary [0, 10)"},
		{ids, []int32{-1, 0, 2}, "id -1 at position 0 is outside"},
		{targets, []int32{0, -2, 2}, "target -2 at position 1"},
		{nil, []int32{0}, "nil *IDs"},
	} {
		if err := c.ids.Set(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Set(%v): error %v, want one containing %q", c.v, err, c.want)
		}
	}
	if err := targets.Set([]int32{0, IgnoreIndex, 9}); err != nil || targets.Ready() != nil {
		t.Errorf("targets with the ignore index: %v", err)
	}
	for _, n := range [][2]int{{0, 5}, {5, 0}} {
		if _, err := NewIDs(n[0], n[1]); err == nil {
			t.Errorf("NewIDs(%d, %d): no error", n[0], n[1])
		}
	}
}

// TestVec checks MulAdd and Dot (the assembly ones on amd64 with AVX2 and
// FMA) and their Go twins against float64 sums, on lengths that reach every
// loop of the assembly; MulAdd leaves the element past len(dst) untouched.
func TestVec(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for n := 0; n <= 80; n++ {
		a := testutil.Convert[float32](testutil.Normals(r, n+1, 1))
		b := testutil.Convert[float32](testutil.Normals(r, n+1, 1))
		d := testutil.Convert[float32](testutil.Normals(r, n+1, 1))
		want, dot := make([]float64, n), 0.0
		for i := range want {
			want[i] = float64(d[i]) + float64(a[i])*float64(b[i])
			dot += float64(a[i]) * float64(b[i])
		}
		for name, f := range map[string]func(dst, a, b []float32){"MulAdd": MulAdd, "mulAddGo": mulAddGo} {
			got := append([]float32(nil), d...)
			f(got[:n], a, b)
			testutil.Close(t, name, got[:n], want, 1e-6)
			if got[n] != d[n] {
				t.Errorf("%s, n = %d: wrote past the end", name, n)
			}
		}
		for name, f := range map[string]func(a, b []float32) float32{"Dot": Dot, "dotGo": dotGo} {
			testutil.CheckErr(t, name, math.Abs(float64(f(a[:n], b))-dot), 1e-5*(1+math.Sqrt(float64(n))))
		}
	}
}

// TestDotRows checks DotRows (the assembly tiles on amd64 with AVX2 and FMA) and dotRowsGo
// against float64 sums, writing and adding, with row strides past the outputs (left alone),
// on shapes that reach every tile and edge; and that a row's outputs are bitwise the same
// whatever the other rows and however w is cut into blocks.
func TestDotRows(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, c := range []struct{ rows, n, k int }{
		{1, 1, 8}, {1, 7, 16}, {3, 9, 24}, {4, 2, 8}, {5, 5, 32}, {8, 6, 256}, {16, 33, 64}, {2, 3, 13}, {6, 5, 4},
	} {
		ldy := c.n + 3
		x := testutil.Convert[float32](testutil.Normals(r, c.rows*c.k, 1))
		w := testutil.Convert[float32](testutil.Normals(r, c.n*c.k, 1))
		y0 := testutil.Convert[float32](testutil.Normals(r, c.rows*ldy, 1))
		for _, add := range []bool{false, true} {
			want := make([]float64, c.rows*ldy)
			for i, v := range y0 {
				want[i] = float64(v) // the gaps past n stay as they are
			}
			for i := range c.rows {
				for j := range c.n {
					s := 0.0
					if add {
						s = float64(y0[i*ldy+j])
					}
					for k := range c.k {
						s += float64(x[i*c.k+k]) * float64(w[j*c.k+k])
					}
					want[i*ldy+j] = s
				}
			}
			for name, f := range map[string]func([]float32, int, []float32, int, []float32, int, int, bool){"DotRows": DotRows, "dotRowsGo": dotRowsGo} {
				got := append([]float32(nil), y0...)
				f(got, ldy, x, c.rows, w, c.k, c.n, add)
				testutil.CloseAbs(t, fmt.Sprintf("%s %+v add=%t", name, c, add), got, want, 1e-5*(1+math.Sqrt(float64(c.k))))
			}
			// Row by row, and w in blocks of one and of three outputs: the same bits.
			whole := append([]float32(nil), y0...)
			DotRows(whole, ldy, x, c.rows, w, c.k, c.n, add)
			for _, blk := range []int{1, 3} {
				got := append([]float32(nil), y0...)
				for i := range c.rows {
					for j := 0; j < c.n; j += blk {
						m := min(blk, c.n-j)
						DotRows(got[i*ldy+j:], ldy, x[i*c.k:], 1, w[j*c.k:], c.k, m, add)
					}
				}
				if !slices.Equal(got, whole) {
					t.Errorf("%+v add=%t: rows one by one in blocks of %d differ from one call", c, add, blk)
				}
			}
		}
	}
}
