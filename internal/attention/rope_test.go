package attention

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

func newRope(t *testing.T, hd, positions int, theta float64) *Rope {
	t.Helper()
	r, err := NewRope(hd, positions, theta)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRopeTables: the tables hold cos and sin of p·θ^(−2i/hd) up to the float32 roundings of the
// frequency (two: the power and the reciprocal), of the angle and of the result, and the
// frequencies are transformers' float32 values.
func TestRopeTables(t *testing.T) {
	for _, c := range []struct {
		hd    int
		theta float64
	}{{8, 10000}, {64, 10000}, {16, 500000}, {6, 1e6}} {
		r := newRope(t, c.hd, 3000, c.theta)
		h := c.hd / 2
		worst := 0.0
		for p := range r.positions {
			for i := range h {
				a := float64(p) * math.Pow(c.theta, -float64(2*i)/float64(c.hd))
				tol := 6e-8 + 2.4e-7*a
				ec := math.Abs(float64(r.cos[p*h+i]) - math.Cos(a))
				es := math.Abs(float64(r.sin[p*h+i]) - math.Sin(a))
				worst = max(worst, ec/tol, es/tol)
			}
		}
		testutil.CheckErr(t, "table error / (6e-8 + 2.4e-7·angle)", worst, 1)
	}
	// transformers' inv_freq for head_dim 8, θ 10⁴ is float32 [1, 0.1, 0.01, 0.001]: angle p·f_i
	// rounded to float32.
	r := newRope(t, 8, 1001, 10000)
	for i, f := range []float32{1, 0.1, 0.01, 0.001} {
		if got, want := r.cos[1000*4+i], float32(math.Cos(float64(1000*f))); got != want {
			t.Errorf("cos(1000·f_%d) = %v, want %v", i, got, want)
		}
	}
}

// TestRopeMatchesReference: the float32 rotation and its backward match the float64 one on the
// same tables; in place gives the same bits as out of place.
func TestRopeMatchesReference(t *testing.T) {
	const rows, heads, hd = 70, 3, 16
	rp := newRope(t, hd, 200, 10000)
	r := rand.New(rand.NewPCG(1, 2))
	pos := make([]int32, rows)
	for i := range pos {
		pos[i] = int32(r.IntN(200))
	}
	x := testutil.Normals(r, rows*heads*hd, 1)
	x32 := testutil.Convert[float32](x)
	for _, inverse := range []bool{false, true} {
		want := make([]float64, len(x))
		if err := RotateReference(rp, want, x, pos, heads, inverse); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(x))
		rot := rp.Forward
		if inverse {
			rot = rp.Backward
		}
		if err := rot(got, x32, pos, heads); err != nil {
			t.Fatal(err)
		}
		testutil.Close(t, "rotation", got, want, 1e-7)
		in := slices.Clone(x32)
		if err := rot(in, in, pos, heads); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(in, got) {
			t.Errorf("in-place rotation (inverse %v) differs", inverse)
		}
		if inverse {
			continue
		}
		row := slices.Clone(x32) // Rotate, one token at a time
		n := heads * hd
		for i, p := range pos {
			rp.Rotate(row[i*n:(i+1)*n], int(p), heads)
		}
		if !slices.Equal(row, got) {
			t.Error("Rotate differs from Forward")
		}
	}
}

// TestRopeBackwardIsAdjoint: ⟨R x, y⟩ = ⟨x, Rᵀ y⟩ in float64: the backward is the exact gradient
// of the forward (a linear map). Rᵀ R x = x only up to the tables' float32 rounding (cos² + sin²
// is 1 within a few 1e-8).
func TestRopeBackwardIsAdjoint(t *testing.T) {
	const rows, heads, hd = 11, 2, 8
	rp := newRope(t, hd, 50, 10000)
	r := rand.New(rand.NewPCG(3, 4))
	pos := make([]int32, rows)
	for i := range pos {
		pos[i] = int32(r.IntN(50))
	}
	x, y := testutil.Normals(r, rows*heads*hd, 1), testutil.Normals(r, rows*heads*hd, 1)
	rx, rty, back := make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x))
	for _, err := range []error{
		RotateReference(rp, rx, x, pos, heads, false),
		RotateReference(rp, rty, y, pos, heads, true),
		RotateReference(rp, back, rx, pos, heads, true),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var a, b float64
	for i := range x {
		a += rx[i] * y[i]
		b += x[i] * rty[i]
	}
	testutil.CheckErr(t, "⟨Rx, y⟩ − ⟨x, Rᵀy⟩", math.Abs(a-b), 1e-12)
	testutil.Close(t, "RᵀRx", back, x, 2e-7)
}

// TestRopeRelative: scores between rotated queries and keys depend on the position difference
// only (up to the float32 tables).
func TestRopeRelative(t *testing.T) {
	const hd = 16
	rp := newRope(t, hd, 400, 10000)
	r := rand.New(rand.NewPCG(5, 6))
	q, k := testutil.Normals(r, hd, 1), testutil.Normals(r, hd, 1)
	score := func(pq, pk int32) float64 {
		rq, rk := make([]float64, hd), make([]float64, hd)
		if err := RotateReference(rp, rq, q, []int32{pq}, 1, false); err != nil {
			t.Fatal(err)
		}
		if err := RotateReference(rp, rk, k, []int32{pk}, 1, false); err != nil {
			t.Fatal(err)
		}
		var s float64
		for i := range rq {
			s += rq[i] * rk[i]
		}
		return s
	}
	for _, d := range []int32{0, 1, 7, 100} {
		want := score(d, 0)
		for _, p := range []int32{3, 50, 299} {
			testutil.CheckErr(t, "score shift", math.Abs(score(p+d, p)-want), 1e-4)
		}
	}
}

// TestPositions: positions count from each document's first token.
func TestPositions(t *testing.T) {
	pos := make([]int32, 12)
	Positions(pos, 2, 6, []uint8{1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 2})
	if want := []int32{0, 1, 2, 0, 1, 2, 0, 1, 0, 1, 2, 0}; !slices.Equal(pos, want) {
		t.Errorf("Positions = %v, want %v", pos, want)
	}
	Positions(pos, 1, 12, nil)
	if want := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}; !slices.Equal(pos, want) {
		t.Errorf("Positions without resets = %v, want %v", pos, want)
	}
}

// TestRopeErrors: bad sizes and positions are errors that say what is wrong.
func TestRopeErrors(t *testing.T) {
	for _, c := range []struct {
		hd, positions int
		theta         float64
		want          string
	}{{7, 10, 1e4, "even"}, {0, 10, 1e4, "even"}, {8, 0, 1e4, "positions"}, {8, 10, 1, "theta"}, {8, 10, math.NaN(), "theta"}, {8, 10, math.Inf(1), "theta"}} {
		if _, err := NewRope(c.hd, c.positions, c.theta); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewRope(%d, %d, %g) = %v, want an error about %s", c.hd, c.positions, c.theta, err, c.want)
		}
	}
	rp := newRope(t, 4, 5, 10000)
	x := make([]float32, 8)
	for _, c := range []struct {
		pos  []int32
		x    []float32
		want string
	}{{[]int32{0, 5}, x, "outside"}, {[]int32{0, -1}, x, "outside"}, {[]int32{0}, x, "needs 4 values"}} {
		if err := rp.Forward(c.x, c.x, c.pos, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Forward(pos %v) = %v, want an error about %q", c.pos, err, c.want)
		}
	}
}
