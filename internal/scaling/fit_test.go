package scaling

import (
	"errors"
	"math"
	"testing"

	"github.com/mambago/mamba/internal/rng"
	"github.com/mambago/mamba/internal/testutil"
)

// synthetic returns runs of law l: sizes log-spaced over [nLo, nHi], tokens =
// ratio·N for each ratio, and losses with multiplicative noise exp(σ·z), z ~ N(0,1).
func synthetic(l Law, sizes int, nLo, nHi float64, ratios []float64, sigma float64, seed uint64) []Run {
	r := rng.New(seed)
	var runs []Run
	for i := range sizes {
		n := nLo * math.Pow(nHi/nLo, float64(i)/float64(sizes-1))
		for _, q := range ratios {
			d := q * n
			runs = append(runs, Run{Arch: "x", Params: n, Tokens: d, Loss: l.Loss(n, d) * math.Exp(sigma*r.Normal())})
		}
	}
	return runs
}

// ratios2to100 are six tokens-per-parameter ratios from 2 to 100.
var ratios2to100 = []float64{2, 5, 10, 20, 50, 100}

func checkRecovers(t *testing.T, truth Law, runs []Run, tolExp, tolE float64) Fit {
	t.Helper()
	f, err := FitLaw(runs, Options{Bootstrap: 40, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckErr(t, "alpha", math.Abs(f.Alpha-truth.Alpha), tolExp)
	testutil.CheckErr(t, "beta", math.Abs(f.Beta-truth.Beta), tolExp)
	testutil.CheckErr(t, "E", math.Abs(f.E-truth.E), tolE)
	a, b := truth.Exponents()
	testutil.CheckErr(t, "a", math.Abs(f.ExpA-a), tolExp)
	testutil.CheckErr(t, "b", math.Abs(f.ExpB-b), tolExp)
	for name, ci := range f.CI {
		if !(ci[0] <= ci[1]) {
			t.Errorf("interval of %s = %v", name, ci)
		}
	}
	for _, name := range []string{"E", "A", "alpha", "B", "beta", "a", "b"} {
		if _, ok := f.CI[name]; !ok {
			t.Errorf("no interval for %s", name)
		}
	}
	if f.NRuns != len(runs) {
		t.Errorf("n_runs %d, want %d", f.NRuns, len(runs))
	}
	return f
}

// Hoffmann et al.'s fitted law, seven sizes 1e5..1e8, six ratios 2..100, 0.4% noise.
func TestFitRecoversChinchilla(t *testing.T) {
	truth := Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}
	f := checkRecovers(t, truth, synthetic(truth, 7, 1e5, 1e8, ratios2to100, 0.004, 7), 0.04, 0.1)
	// The intervals of a well-determined fit hold the truth.
	for name, v := range map[string]float64{"alpha": truth.Alpha, "beta": truth.Beta, "E": truth.E} {
		if ci := f.CI[name]; !(ci[0] <= v+0.04 && v-0.04 <= ci[1]) {
			t.Errorf("%s interval %v far from the truth %v", name, ci, v)
		}
	}
}

// Other truths: β well below α, steeper exponents, a low floor, and Epoch AI's
// refit of Chinchilla's data. (A truth whose N-term is smaller than the noise, e.g.
// A = 120, B = 900, is not identifiable from these grids, whatever the optimizer.)
func TestFitRecoversOtherLaws(t *testing.T) {
	for _, c := range []struct {
		name  string
		truth Law
	}{
		{"beta<alpha", Law{E: 1.2, A: 800, Alpha: 0.42, B: 250, Beta: 0.25}},
		{"steep", Law{E: 2.3, A: 1500, Alpha: 0.55, B: 3000, Beta: 0.5}},
		{"low floor", Law{E: 0.5, A: 1e4, Alpha: 0.7, B: 1e3, Beta: 0.4}},
		{"Besiroglu", Law{E: 1.82, A: 482.0, Alpha: 0.35, B: 2085.4, Beta: 0.37}},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkRecovers(t, c.truth, synthetic(c.truth, 7, 1e5, 1e8, ratios2to100, 0.004, 3), 0.04, 0.1)
		})
	}
}

// Without noise the fit is exact.
func TestFitExactWithoutNoise(t *testing.T) {
	truth := Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}
	f, err := FitLaw(synthetic(truth, 7, 1e5, 1e8, ratios2to100, 0, 1), Options{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"E", f.E, truth.E}, {"A", f.A, truth.A}, {"alpha", f.Alpha, truth.Alpha}, {"B", f.B, truth.B}, {"beta", f.Beta, truth.Beta}} {
		testutil.CheckErr(t, c.name, math.Abs(c.got-c.want)/c.want, 1e-4)
	}
	if f.CI != nil || f.Bootstrap != 0 {
		t.Errorf("bootstrap off but intervals %v", f.CI)
	}
}

// The same runs and seed give the same fit, bit for bit.
func TestFitIsDeterministic(t *testing.T) {
	truth := Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}
	runs := synthetic(truth, 5, 1e5, 1e7, []float64{5, 20, 50}, 0.004, 2)
	f1, err1 := FitLaw(runs, Options{Bootstrap: 20, Seed: 9})
	f2, err2 := FitLaw(runs, Options{Bootstrap: 20, Seed: 9})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if f1.Law != f2.Law || f1.CI["alpha"] != f2.CI["alpha"] || f1.CI["E"] != f2.CI["E"] {
		t.Errorf("two fits differ: %+v vs %+v", f1, f2)
	}
}

func TestFitRejectsBadRuns(t *testing.T) {
	good := Run{Arch: "x", Params: 1e5, Tokens: 1e6, Loss: 3}
	five := func(edit func(*Run)) []Run {
		rs := []Run{good, good, good, good, good}
		for i := range rs {
			rs[i].Params, rs[i].Tokens = good.Params*float64(i+1), good.Tokens*float64(5-i)
		}
		edit(&rs[2])
		return rs
	}
	for name, runs := range map[string][]Run{
		"four runs":      {good, good, good, good},
		"zero params":    five(func(r *Run) { r.Params = 0 }),
		"negative token": five(func(r *Run) { r.Tokens = -1 }),
		"zero loss":      five(func(r *Run) { r.Loss = 0 }),
		"NaN loss":       five(func(r *Run) { r.Loss = math.NaN() }),
		"Inf params":     five(func(r *Run) { r.Params = math.Inf(1) }),
		"negative flops": five(func(r *Run) { r.FLOPs = -1 }),
		"one size":       five(func(*Run) {}),
		"one budget":     five(func(*Run) {}),
	} {
		for i := range runs { // a context study: one size or one budget, no law to fit
			switch name {
			case "one size":
				runs[i].Params = good.Params
			case "one budget":
				runs[i].Tokens = good.Tokens
			}
		}
		if _, err := FitLaw(runs, Options{}); !errors.Is(err, ErrInput) {
			t.Errorf("%s: err = %v, want ErrInput", name, err)
		}
	}
	runs := synthetic(Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}, 3, 1e5, 1e6, []float64{5, 20}, 0, 1)
	runs = append(runs, Run{Arch: "y", Params: 1, Tokens: 1, Loss: 1})
	if _, err := FitByArch(runs, Options{Bootstrap: -1}); !errors.Is(err, ErrInput) {
		t.Errorf("arch with one run: err = %v, want ErrInput", err)
	}
}

// On an IsoFLOP grid of an exact law, approach 1 finds the law's allocation exponents.
func TestEnvelopeOnIsoFLOPGrid(t *testing.T) {
	truth := Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}
	var runs []Run
	for _, c := range []float64{1e15, 1e16, 1e17, 1e18, 1e19} {
		nOpt, _ := truth.Optimal(c, 6)
		for i := -8; i <= 8; i++ {
			n := nOpt * math.Pow(2, float64(i)/4)
			d := c / (6 * n)
			runs = append(runs, Run{Params: n, Tokens: d, Loss: truth.Loss(n, d)})
		}
	}
	e, why := envelope(runs)
	if e == nil {
		t.Fatal(why)
	}
	if len(e.Buckets) != 5 {
		t.Fatalf("%d buckets, want 5", len(e.Buckets))
	}
	a, b := truth.Exponents()
	// The grid steps N by 2^(1/4), so the frontier is found to within that.
	testutil.CheckErr(t, "a", math.Abs(e.A-a), 0.03)
	testutil.CheckErr(t, "b", math.Abs(e.B-b), 0.03)
	if _, why := envelope(runs[:20]); why == "" {
		t.Errorf("two buckets gave an envelope")
	}
}

func TestOptimalIsTheMinimum(t *testing.T) {
	l := Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}
	const c, k = 1e20, 6.0
	n, loss := l.Optimal(c, k)
	for _, f := range []float64{0.9, 1.1} {
		if other := l.Loss(n*f, c/(k*n*f)); !(other > loss) {
			t.Errorf("L at %g·N_opt = %v, not above L(N_opt) = %v", f, other, loss)
		}
	}
}

func BenchmarkFitLaw(b *testing.B) {
	runs := synthetic(Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}, 7, 1e5, 1e8, ratios2to100, 0.004, 7)
	for b.Loop() {
		if _, err := FitLaw(runs, Options{Bootstrap: -1}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFitLawBootstrap(b *testing.B) {
	runs := synthetic(Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}, 7, 1e5, 1e8, ratios2to100, 0.004, 7)
	for b.Loop() {
		if _, err := FitLaw(runs, Options{Bootstrap: 200}); err != nil {
			b.Fatal(err)
		}
	}
}
