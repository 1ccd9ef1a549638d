package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// testParams makes params of the given sizes with random values; the second is NoDecay.
func testParams(rng *rand.Rand, sizes ...int) []Param {
	ps := make([]Param, len(sizes))
	for i, n := range sizes {
		ps[i] = Param{Name: fmt.Sprintf("p%d", i), Value: make([]float32, n), Grad: make([]float32, n), NoDecay: i == 1}
		for j := range ps[i].Value {
			ps[i].Value[j] = float32(rng.NormFloat64())
		}
	}
	return ps
}

func randomGrads(rng *rand.Rand, ps []Param, std float64) {
	for _, p := range ps {
		for j := range p.Grad {
			p.Grad[j] = float32(std * rng.NormFloat64())
		}
	}
}

// refAdamW is the float64 reference: the package doc's equations, one line each.
type refAdamW struct {
	cfg     Config
	p, m, v [][]float64
	noDecay []bool
	t       int
}

func newRef(ps []Param, cfg Config) *refAdamW {
	r := &refAdamW{cfg: cfg}
	for _, p := range ps {
		x := make([]float64, len(p.Value))
		for j, v := range p.Value {
			x[j] = float64(v)
		}
		r.p = append(r.p, x)
		r.m = append(r.m, make([]float64, len(x)))
		r.v = append(r.v, make([]float64, len(x)))
		r.noDecay = append(r.noDecay, p.NoDecay)
	}
	return r
}

// step returns the global gradient norm it clipped with.
func (r *refAdamW) step(ps []Param, lr float64) float64 {
	var ss float64
	for _, p := range ps {
		for _, g := range p.Grad {
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	s := math.Min(1, r.cfg.GradClip/(norm+1e-6))
	r.t++
	bc1 := 1 - math.Pow(r.cfg.Beta1, float64(r.t))
	bc2 := 1 - math.Pow(r.cfg.Beta2, float64(r.t))
	for i, p := range ps {
		wd := r.cfg.WeightDecay
		if r.noDecay[i] {
			wd = 0
		}
		for j, g32 := range p.Grad {
			g := s * float64(g32)
			r.p[i][j] *= 1 - lr*wd
			r.m[i][j] = r.cfg.Beta1*r.m[i][j] + (1-r.cfg.Beta1)*g
			r.v[i][j] = r.cfg.Beta2*r.v[i][j] + (1-r.cfg.Beta2)*g*g
			mhat := r.m[i][j] / bc1
			vhat := r.v[i][j] / bc2
			r.p[i][j] -= lr * mhat / (math.Sqrt(vhat) + r.cfg.Eps)
		}
	}
	return norm
}

func TestAdamWMatchesFloat64Reference(t *testing.T) {
	for _, clip := range []float64{1.0, 1e3} { // clipping active / inactive
		t.Run(fmt.Sprintf("clip=%g", clip), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			ps := testParams(rng, 37, 5, blockSize+123, 1)
			cfg := Defaults()
			cfg.GradClip = clip
			cfg.WarmupSteps = 2
			o, err := newAdamW(ps, cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			ref := newRef(ps, cfg)
			const steps = 8
			for k := range steps {
				randomGrads(rng, ps, 0.5)
				lr := cfg.LRAt(k, steps)
				wantNorm := ref.step(ps, lr)
				norm := o.GradNorm()
				if !testutil.Within(math.Abs(norm-wantNorm), 1e-12*wantNorm) {
					t.Fatalf("step %d: grad norm %v, want %v", k, norm, wantNorm)
				}
				o.Step(lr, ClipScale(norm, cfg.GradClip))
			}
			for i, p := range ps {
				var num, den float64
				for j, v := range p.Value {
					d := float64(v) - ref.p[i][j]
					num += d * d
					den += ref.p[i][j] * ref.p[i][j]
				}
				if rel := math.Sqrt(num / den); !testutil.Within(rel, 2e-6) {
					t.Errorf("%s: relative L2 error %.3g after %d steps, want ≤ 2e-6", p.Name, rel, steps)
				}
			}
			if o.Updates() != steps {
				t.Errorf("Updates() = %d, want %d", o.Updates(), steps)
			}
		})
	}
}

func TestNoDecayParamsAreNotDecayed(t *testing.T) {
	ps := []Param{
		{Name: "w", Value: []float32{2}, Grad: []float32{0}},
		{Name: "b", Value: []float32{2}, Grad: []float32{0}, NoDecay: true},
	}
	cfg := Defaults()
	o, err := New(ps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	o.Step(0.5, 1) // zero gradient: only decay moves a parameter
	if got, want := ps[0].Value[0], float32(2*(1-0.5*cfg.WeightDecay)); got != want {
		t.Errorf("decayed param = %v, want %v", got, want)
	}
	if got := ps[1].Value[0]; got != 2 {
		t.Errorf("NoDecay param = %v, want 2", got)
	}
}

func TestResultsIndependentOfWorkers(t *testing.T) {
	run := func(workers int) ([]Param, []float64) {
		rng := rand.New(rand.NewPCG(7, 8))
		ps := testParams(rng, 3*blockSize+17, 100, 2*blockSize)
		o, err := newAdamW(ps, Defaults(), workers)
		if err != nil {
			t.Fatal(err)
		}
		var norms []float64
		for k := range 4 {
			randomGrads(rng, ps, 1)
			n := o.GradNorm()
			norms = append(norms, n)
			o.Step(o.cfg.LRAt(k, 4), ClipScale(n, 1))
		}
		return ps, norms
	}
	base, baseNorms := run(1)
	for _, w := range []int{2, 3, 8} {
		ps, norms := run(w)
		for k := range norms {
			if norms[k] != baseNorms[k] {
				t.Errorf("workers=%d: norm[%d] = %v, want %v (workers=1)", w, k, norms[k], baseNorms[k])
			}
		}
		for i := range ps {
			for j := range ps[i].Value {
				if ps[i].Value[j] != base[i].Value[j] {
					t.Fatalf("workers=%d: %s[%d] = %v, want %v (workers=1)", w, ps[i].Name, j, ps[i].Value[j], base[i].Value[j])
				}
			}
		}
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ps := testParams(rng, 4*blockSize, 10)
	randomGrads(rng, ps, 1)
	o, err := newAdamW(ps, Defaults(), 4)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		o.Step(1e-3, ClipScale(o.GradNorm(), 1))
	})
	if allocs != 0 {
		t.Errorf("GradNorm+Step allocated %v times per call, want 0", allocs)
	}
}

func TestNonFiniteGradientGivesNonFiniteNorm(t *testing.T) {
	ps := []Param{{Name: "w", Value: []float32{1, 2}, Grad: []float32{1, float32(math.NaN())}}}
	o, err := New(ps, Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if n := o.GradNorm(); !math.IsNaN(n) {
		t.Errorf("GradNorm with a NaN gradient = %v, want NaN", n)
	}
	ps[0].Grad[1] = float32(math.Inf(-1))
	if n := o.GradNorm(); !math.IsInf(n, 1) {
		t.Errorf("GradNorm with a -Inf gradient = %v, want +Inf", n)
	}
}

func TestStateRestoreContinuesBitwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ps := testParams(rng, blockSize+5, 9)
	o, _ := New(ps, Defaults())
	gradsAt := func(k uint64) *rand.Rand { return rand.New(rand.NewPCG(9, k)) }
	for k := range uint64(3) {
		randomGrads(gradsAt(k), ps, 1)
		o.Step(1e-3, ClipScale(o.GradNorm(), 1))
	}
	// Snapshot values and state, as a checkpoint would.
	snap := testParams(rng, blockSize+5, 9)
	for i := range ps {
		copy(snap[i].Value, ps[i].Value)
	}
	st := o.State()
	saved := State{Updates: st.Updates, Names: st.Names}
	for i := range st.M {
		saved.M = append(saved.M, append([]float32(nil), st.M[i]...))
		saved.V = append(saved.V, append([]float32(nil), st.V[i]...))
	}
	for k := range uint64(2) {
		randomGrads(gradsAt(3+k), ps, 1)
		o.Step(1e-3, ClipScale(o.GradNorm(), 1))
	}
	r, _ := New(snap, Defaults())
	if err := r.Restore(saved); err != nil {
		t.Fatal(err)
	}
	for k := range uint64(2) {
		randomGrads(gradsAt(3+k), snap, 1)
		r.Step(1e-3, ClipScale(r.GradNorm(), 1))
	}
	for i := range ps {
		for j := range ps[i].Value {
			if ps[i].Value[j] != snap[i].Value[j] {
				t.Fatalf("%s[%d] after restore = %v, want %v", ps[i].Name, j, snap[i].Value[j], ps[i].Value[j])
			}
		}
	}
}

func TestRestoreRejectsMismatch(t *testing.T) {
	ps := []Param{{Name: "a", Value: make([]float32, 3), Grad: make([]float32, 3)}}
	o, _ := New(ps, Defaults())
	for _, tc := range []struct {
		s    State
		want string
	}{
		{State{Names: []string{"a", "b"}, M: make([][]float32, 2), V: make([][]float32, 2)}, "2 parameters"},
		{State{Names: []string{"x"}, M: [][]float32{make([]float32, 3)}, V: [][]float32{make([]float32, 3)}}, `"x"`},
		{State{Names: []string{"a"}, M: [][]float32{make([]float32, 2)}, V: [][]float32{make([]float32, 3)}}, "2/3 moments"},
	} {
		err := o.Restore(tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Restore error = %v, want one containing %q", err, tc.want)
		}
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, tc := range []struct {
		ps   []Param
		want string
	}{
		{nil, "no parameters"},
		{[]Param{{Name: "a", Value: make([]float32, 2), Grad: make([]float32, 1)}}, "1 gradients"},
		{[]Param{{Name: "a"}, {Name: "a"}}, "duplicate"},
	} {
		if _, err := New(tc.ps, Defaults()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New error = %v, want one containing %q", err, tc.want)
		}
	}
}

func TestAccumulatorAverages(t *testing.T) {
	ps := []Param{{Name: "a", Value: make([]float32, 2), Grad: make([]float32, 2)}}
	acc := NewAccumulator(ps)
	for _, g := range [][]float32{{1, 2}, {3, 4}, {5, 9}} {
		copy(ps[0].Grad, g)
		acc.Add()
	}
	acc.Mean()
	if ps[0].Grad[0] != 3 || ps[0].Grad[1] != 5 {
		t.Errorf("mean gradient = %v, want [3 5]", ps[0].Grad)
	}
	copy(ps[0].Grad, []float32{2, 2})
	acc.Add()
	acc.Mean()
	if ps[0].Grad[0] != 2 || ps[0].Grad[1] != 2 {
		t.Errorf("mean after reset = %v, want [2 2]", ps[0].Grad)
	}
}

func BenchmarkStep(b *testing.B) {
	for _, n := range []int{1 << 16, 1 << 22} {
		b.Run(fmt.Sprintf("params=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			ps := testParams(rng, n)
			randomGrads(rng, ps, 1)
			o, _ := New(ps, Defaults())
			b.ResetTimer()
			for b.Loop() {
				o.Step(1e-3, ClipScale(o.GradNorm(), 1))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/param")
		})
	}
}
