package scaling

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/optimize"
	"gonum.org/v1/gonum/stat"

	"github.com/mambago/mamba/internal/parallel"
	"github.com/mambago/mamba/internal/rng"
)

// Run is one finished training run, as the fit sees it.
type Run struct {
	Arch   string
	Params float64 // N: non-embedding parameters
	Tokens float64 // D: training tokens
	Loss   float64 // final validation loss, nats per token
	FLOPs  float64 // C: training compute; 0 means 6·N·D
}

// Compute is the run's C: its FLOPs, or 6·N·D when they are not known.
func (r Run) Compute() float64 {
	if r.FLOPs > 0 {
		return r.FLOPs
	}
	return 6 * r.Params * r.Tokens
}

// Law is the parametric loss L(N, D) = E + A/N^α + B/D^β.
type Law struct {
	E     float64 `json:"E"`
	A     float64 `json:"A"`
	Alpha float64 `json:"alpha"`
	B     float64 `json:"B"`
	Beta  float64 `json:"beta"`
}

// Loss is L(n, d).
func (l Law) Loss(n, d float64) float64 {
	return l.E + l.A/math.Pow(n, l.Alpha) + l.B/math.Pow(d, l.Beta)
}

// Exponents are the compute-optimal allocation exponents N_opt ∝ C^a, D_opt ∝ C^b:
// a = β/(α+β), b = α/(α+β).
func (l Law) Exponents() (a, b float64) {
	s := l.Alpha + l.Beta
	return l.Beta / s, l.Alpha / s
}

// Optimal returns the N minimising L(N, C/(k·N)) for compute c, where k = C/(N·D) is
// the FLOPs per parameter per token (6 for Kaplan's count), and the loss there:
// N_opt = G·(c/k)^a with G = (αA/(βB))^(1/(α+β)).
func (l Law) Optimal(c, k float64) (n, loss float64) {
	a, _ := l.Exponents()
	g := math.Pow(l.Alpha*l.A/(l.Beta*l.B), 1/(l.Alpha+l.Beta))
	n = g * math.Pow(c/k, a)
	return n, l.Loss(n, c/(k*n))
}

// Interval is a two-sided confidence interval [lo, hi].
type Interval [2]float64

// Fit is the fitted law of one architecture's runs.
type Fit struct {
	Law
	// ExpA and ExpB are the compute-optimal exponents a and b (Law.Exponents).
	ExpA float64 `json:"a"`
	ExpB float64 `json:"b"`
	// CI holds bootstrap 95% intervals (2.5th and 97.5th percentiles) of E, A, alpha,
	// B, beta, a and b.
	CI        map[string]Interval `json:"ci"`
	NRuns     int                 `json:"n_runs"`
	Huber     float64             `json:"huber_loss"` // objective at the optimum
	Bootstrap int                 `json:"bootstrap"`  // resamples behind CI
	Envelope  *Envelope           `json:"approach1,omitempty"`
	// NoEnvelope says why Envelope is absent.
	NoEnvelope string `json:"approach1_note,omitempty"`
}

// Options tune FitLaw. The zero value is the documented default.
type Options struct {
	Delta     float64 // Huber δ; 0 = 1e-3
	Bootstrap int     // resamples for the intervals; 0 = 1000, < 0 = none
	Seed      uint64  // resampling seed
}

// MinRuns is the fewest runs FitLaw accepts: the law has five parameters.
const MinRuns = 5

// ErrInput marks runs that cannot be fitted (too few, or non-positive values).
var ErrInput = errors.New("scaling: bad runs")

// FitLaw fits L(N, D) to runs (Chinchilla's approach 3, see the package doc), with
// bootstrap intervals and, where the grid allows it, approach 1's envelope.
func FitLaw(runs []Run, o Options) (Fit, error) {
	if err := check(runs); err != nil {
		return Fit{}, err
	}
	if o.Delta == 0 {
		o.Delta = 1e-3
	}
	if o.Bootstrap == 0 {
		o.Bootstrap = 1000
	}
	full := newObjective(runs, o.Delta)
	starts := full.lowest(startGrid(), Starts)
	fits := make([]optimum, len(starts))
	parallel.For(len(starts), 1, func(_, lo, hi int) {
		obj := full.clone()
		for i := lo; i < hi; i++ {
			fits[i] = obj.minimize(starts[i])
		}
	})
	best := bestOf(fits)
	if best.x == nil {
		return Fit{}, fmt.Errorf("%w: the fit did not converge from any starting point", ErrInput)
	}
	f := Fit{Law: lawOf(best.x), NRuns: len(runs), Huber: best.f}
	f.ExpA, f.ExpB = f.Exponents()

	// Bootstrap: refit resampled runs from the full fit's optimum and a coarse grid.
	if o.Bootstrap > 0 {
		f.Bootstrap = o.Bootstrap
		coarse := coarseGrid()
		samples := make([][7]float64, o.Bootstrap)
		parallel.For(o.Bootstrap, 1, func(_, lo, hi int) {
			obj := full.clone()
			idx := make([]int, len(runs))
			for s := lo; s < hi; s++ {
				r := rng.New(o.Seed, uint64(s))
				for i := range idx {
					idx[i] = r.Intn(len(runs))
				}
				obj.resample(full, idx)
				var opt optimum
				for _, x0 := range append([][]float64{best.x}, obj.lowest(coarse, bootstrapStarts)...) {
					if m := obj.minimize(x0); m.x != nil && (opt.x == nil || m.f < opt.f) {
						opt = m
					}
				}
				if opt.x == nil {
					opt.x = best.x // keep the count; a failed refit is vanishingly rare
				}
				l := lawOf(opt.x)
				a, b := l.Exponents()
				samples[s] = [7]float64{l.E, l.A, l.Alpha, l.B, l.Beta, a, b}
			}
		})
		f.CI = map[string]Interval{}
		col := make([]float64, len(samples))
		for j, name := range []string{"E", "A", "alpha", "B", "beta", "a", "b"} {
			for i, s := range samples {
				col[i] = s[j]
			}
			slices.Sort(col)
			f.CI[name] = Interval{stat.Quantile(0.025, stat.Empirical, col, nil), stat.Quantile(0.975, stat.Empirical, col, nil)}
		}
	}
	f.Envelope, f.NoEnvelope = envelope(runs)
	return f, nil
}

// FitByArch fits every architecture's runs independently.
func FitByArch(runs []Run, o Options) (map[string]Fit, error) {
	by := map[string][]Run{}
	var archs []string
	for _, r := range runs {
		if _, ok := by[r.Arch]; !ok {
			archs = append(archs, r.Arch)
		}
		by[r.Arch] = append(by[r.Arch], r)
	}
	if len(archs) == 0 {
		return nil, fmt.Errorf("%w: no runs", ErrInput)
	}
	slices.Sort(archs)
	out := map[string]Fit{}
	for _, a := range archs {
		f, err := FitLaw(by[a], o)
		if err != nil {
			return nil, fmt.Errorf("arch %q: %w", a, err)
		}
		out[a] = f
	}
	return out, nil
}

func check(runs []Run) error {
	if len(runs) < MinRuns {
		return fmt.Errorf("%w: %d runs, the fit needs at least %d (five parameters)", ErrInput, len(runs), MinRuns)
	}
	for i, r := range runs {
		for _, v := range []struct {
			name string
			x    float64
		}{{"params", r.Params}, {"tokens", r.Tokens}, {"loss", r.Loss}} {
			if !(v.x > 0) || math.IsInf(v.x, 0) {
				return fmt.Errorf("%w: run %d has %s %v; params, tokens and loss must be positive and finite", ErrInput, i+1, v.name, v.x)
			}
		}
		if r.FLOPs < 0 || math.IsNaN(r.FLOPs) || math.IsInf(r.FLOPs, 0) {
			return fmt.Errorf("%w: run %d has flops %v", ErrInput, i+1, r.FLOPs)
		}
	}
	// A/N^α and B/D^β are only identified where N and D each take several values: a
	// context study (one size, one budget) has no law to fit.
	for _, v := range []struct {
		name string
		of   func(Run) float64
	}{{"params", func(r Run) float64 { return r.Params }}, {"tokens", func(r Run) float64 { return r.Tokens }}} {
		same := true
		for _, r := range runs[1:] {
			same = same && v.of(r) == v.of(runs[0])
		}
		if same {
			return fmt.Errorf("%w: every run has %s %v; the fit needs runs that differ in both params and tokens", ErrInput, v.name, v.of(runs[0]))
		}
	}
	return nil
}

// The parameter vector is x = (a, α, b, β, e) with A = exp(a), B = exp(b), E = exp(e).
func lawOf(x []float64) Law {
	return Law{A: math.Exp(x[0]), Alpha: x[1], B: math.Exp(x[2]), Beta: x[3], E: math.Exp(x[4])}
}

// startGrid is Hoffmann et al.'s grid of initialisations: α, β ∈ {0, 0.5, …, 2},
// e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25} (4,500 points).
func startGrid() [][]float64 {
	return grid([]float64{0, 5, 10, 15, 20, 25}, []float64{0, 0.5, 1, 1.5, 2}, []float64{-1, -0.5, 0, 0.5, 1})
}

// Starts is how many points of the grid BFGS starts from: those where the
// objective is lowest.
const Starts = 100

// bootstrapStarts is how many points of coarseGrid each bootstrap refit starts
// from, besides the full fit's optimum.
const bootstrapStarts = 2

// lowest returns the k points of g where the objective is lowest, in grid order
// among equals.
func (o *objective) lowest(g [][]float64, k int) [][]float64 {
	f := make([]float64, len(g))
	for i, x := range g {
		f[i] = o.eval(x, nil)
	}
	idx := make([]int, len(g))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int { return cmp.Compare(f[i], f[j]) })
	out := make([][]float64, 0, k)
	for _, i := range idx[:min(k, len(idx))] {
		out = append(out, g[i])
	}
	return out
}

// coarseGrid is the bootstrap's extra starts, a corner of the same grid.
func coarseGrid() [][]float64 {
	return grid([]float64{5, 15}, []float64{0.5, 1}, []float64{0, 0.5})
}

func grid(ab, exps, es []float64) [][]float64 {
	var g [][]float64
	for _, a := range ab {
		for _, al := range exps {
			for _, b := range ab {
				for _, be := range exps {
					for _, e := range es {
						g = append(g, []float64{a, al, b, be, e})
					}
				}
			}
		}
	}
	return g
}

type optimum struct {
	x []float64
	f float64
}

// bestOf returns the lowest finite optimum, the first in grid order among equals.
func bestOf(ms []optimum) optimum {
	var best optimum
	for _, m := range ms {
		if m.x != nil && (best.x == nil || m.f < best.f) {
			best = m
		}
	}
	return best
}

// objective is Σ Huber_δ(log L̂ᵢ − log Lᵢ) over the runs, with
// log L̂ = LSE(a − α log N, b − β log D, e).
type objective struct {
	logN, logD, logL []float64
	delta            float64
}

func newObjective(runs []Run, delta float64) *objective {
	o := &objective{delta: delta}
	for _, r := range runs {
		o.logN = append(o.logN, math.Log(r.Params))
		o.logD = append(o.logD, math.Log(r.Tokens))
		o.logL = append(o.logL, math.Log(r.Loss))
	}
	return o
}

func (o *objective) clone() *objective {
	return &objective{logN: slices.Clone(o.logN), logD: slices.Clone(o.logD), logL: slices.Clone(o.logL), delta: o.delta}
}

// resample sets o's runs to full's runs idx.
func (o *objective) resample(full *objective, idx []int) {
	for i, j := range idx {
		o.logN[i], o.logD[i], o.logL[i] = full.logN[j], full.logD[j], full.logL[j]
	}
}

// eval returns the objective and, when grad is not nil, writes its gradient:
// with r = log L̂ − log L, ψ = Huber′(r) and w = softmax of the three LSE terms,
//
//	∂/∂a = Σ ψ w₁   ∂/∂α = −Σ ψ w₁ log N   ∂/∂b = Σ ψ w₂   ∂/∂β = −Σ ψ w₂ log D   ∂/∂e = Σ ψ w₃
func (o *objective) eval(x, grad []float64) float64 {
	a, alpha, b, beta, e := x[0], x[1], x[2], x[3], x[4]
	if grad != nil {
		clear(grad)
	}
	var f float64
	for i := range o.logN {
		t1, t2, t3 := a-alpha*o.logN[i], b-beta*o.logD[i], e
		m := max(t1, t2, t3)
		e1, e2, e3 := math.Exp(t1-m), math.Exp(t2-m), math.Exp(t3-m)
		s := e1 + e2 + e3
		r := m + math.Log(s) - o.logL[i]
		var psi float64
		if math.Abs(r) <= o.delta {
			f += 0.5 * r * r
			psi = r
		} else {
			f += o.delta * (math.Abs(r) - 0.5*o.delta)
			psi = math.Copysign(o.delta, r)
		}
		if grad != nil {
			w1, w2, w3 := psi*e1/s, psi*e2/s, psi*e3/s
			grad[0] += w1
			grad[1] -= w1 * o.logN[i]
			grad[2] += w2
			grad[3] -= w2 * o.logD[i]
			grad[4] += w3
		}
	}
	return f
}

// minimize runs BFGS from x0. It returns x nil when the result is not finite.
func (o *objective) minimize(x0 []float64) optimum {
	p := optimize.Problem{
		Func: func(x []float64) float64 { return o.eval(x, nil) },
		Grad: func(grad, x []float64) { o.eval(x, grad) },
	}
	// A line search that cannot improve further ends BFGS with an error but a
	// usable best point: the error is not a failure; a non-finite result is.
	res, _ := optimize.Minimize(p, x0, &optimize.Settings{GradientThreshold: 1e-10, MajorIterations: 300}, &optimize.BFGS{})
	if res == nil || math.IsNaN(res.F) || math.IsInf(res.F, 0) {
		return optimum{}
	}
	for _, v := range res.X {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return optimum{}
		}
	}
	return optimum{x: res.X, f: res.F}
}
