package scan

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/internal/testutil"
)

// fixtureDir is $SCAN_FIXTURES_DIR, or the shared/fixtures folder beside the repository root.
func fixtureDir() string {
	if d := os.Getenv("SCAN_FIXTURES_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "shared", "fixtures")
}

// fixture is one scan_*.safetensors case converted to the package's token-major layout.
type fixture struct {
	shape    Shape
	softplus bool
	in       Inputs[float64]
	dout     []float64
	want     map[string][]float64 // out, last_state and every grad_* present, token-major
}

// loadFixture reads a case. The file's layout is mamba_ssm's: u, delta, z, out, dout and their
// gradients (batch, dim, L); B, C and their gradients (batch, N, L); the rest as in this package.
func loadFixture(t *testing.T, path string) fixture {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	meta := func(k string) int {
		v, err := strconv.Atoi(f.Metadata[k])
		if err != nil {
			t.Fatalf("%s: metadata %q = %q: %v", path, k, f.Metadata[k], err)
		}
		return v
	}
	s := Shape{Batch: meta("batch"), Len: meta("L"), Channels: meta("dim"), State: meta("N")}
	sp, err := strconv.ParseBool(f.Metadata["delta_softplus"])
	if err != nil {
		t.Fatalf("%s: metadata delta_softplus = %q: %v", path, f.Metadata["delta_softplus"], err)
	}
	names := f.Names()
	get := func(name string) []float64 {
		if !slices.Contains(names, name) {
			return nil
		}
		x, shape, err := f.Float64(name)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		switch name {
		case "u", "delta", "z", "out", "dout", "grad_u", "grad_delta", "grad_z":
			return transposeLast(t, name, x, shape, s.Batch, s.Channels, s.Len)
		case "B", "C", "grad_B", "grad_C":
			return transposeLast(t, name, x, shape, s.Batch, s.State, s.Len)
		}
		return x
	}
	fx := fixture{shape: s, softplus: sp, dout: get("dout"), want: map[string][]float64{}}
	fx.in = Inputs[float64]{U: get("u"), Delta: get("delta"), A: get("A"), B: get("B"), C: get("C"),
		D: get("D"), Z: get("z"), DeltaBias: get("delta_bias"), H0: get("h0")}
	for _, n := range names {
		if n == "out" || n == "last_state" || len(n) > 5 && n[:5] == "grad_" {
			fx.want[n] = get(n)
		}
	}
	if fx.dout == nil || fx.want["out"] == nil {
		t.Fatalf("%s: no dout or out tensor", path)
	}
	return fx
}

// transposeLast turns (b, r, c) into (b, c, r) after checking the stored shape.
func transposeLast(t *testing.T, name string, x []float64, shape []int, b, r, c int) []float64 {
	t.Helper()
	if !slices.Equal(shape, []int{b, r, c}) {
		t.Fatalf("%s has shape %v, want %v", name, shape, []int{b, r, c})
	}
	y := make([]float64, len(x))
	for i := range b {
		for j := range r {
			for k := range c {
				y[(i*c+k)*r+j] = x[(i*r+j)*c+k]
			}
		}
	}
	return y
}

// grads allocates a gradient for every input the fixture has a grad_* for.
func (fx fixture) grads() (Grads[float64], map[string]*[]float64) {
	var g Grads[float64]
	dst := map[string]*[]float64{"grad_u": &g.U, "grad_delta": &g.Delta, "grad_A": &g.A, "grad_B": &g.B,
		"grad_C": &g.C, "grad_D": &g.D, "grad_z": &g.Z, "grad_delta_bias": &g.DeltaBias, "grad_h0": &g.H0}
	for name, p := range dst {
		if w, ok := fx.want[name]; ok {
			*p = make([]float64, len(w))
		}
	}
	return g, dst
}

func TestFixtures(t *testing.T) {
	dir := fixtureDir()
	paths, err := filepath.Glob(filepath.Join(dir, "scan_*.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no scan_*.safetensors in %s (set SCAN_FIXTURES_DIR)", dir)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fx := loadFixture(t, path)
			checkFixture64(t, fx)
			onPaths(t, func(t *testing.T) { checkFixture32(t, fx) })
		})
	}
}

func checkFixture64(t *testing.T, fx fixture) {
	k, err := NewReference(fx.shape, Options{Softplus: fx.softplus})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(fx.want["out"]))
	last := make([]float64, fx.shape.Batch*fx.shape.Channels*fx.shape.State)
	if err := k.Forward(fx.in, out, last); err != nil {
		t.Fatal(err)
	}
	g, dst := fx.grads()
	if err := k.Backward(fx.in, fx.dout, nil, g); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{"out": out, "last_state": last}
	for name, p := range dst {
		got[name] = *p
	}
	compareFixture(t, "float64", fx, got, 1e-9)
}

func checkFixture32(t *testing.T, fx fixture) {
	k, err := New(fx.shape, Options{Softplus: fx.softplus, Chunk: 7})
	if err != nil {
		t.Fatal(err)
	}
	in := toF32(fx.in)
	out := make([]float32, len(fx.want["out"]))
	last := make([]float32, fx.shape.Batch*fx.shape.Channels*fx.shape.State)
	if err := k.Forward(in, out, last); err != nil {
		t.Fatal(err)
	}
	g64, dst := fx.grads()
	g := Grads[float32]{U: f32(g64.U), Delta: f32(g64.Delta), A: f32(g64.A), B: f32(g64.B), C: f32(g64.C),
		D: f32(g64.D), Z: f32(g64.Z), DeltaBias: f32(g64.DeltaBias), H0: f32(g64.H0)}
	if err := k.Backward(in, f32(fx.dout), nil, g); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{"out": widen(out), "last_state": widen(last)}
	back := map[string][]float32{"grad_u": g.U, "grad_delta": g.Delta, "grad_A": g.A, "grad_B": g.B, "grad_C": g.C,
		"grad_D": g.D, "grad_z": g.Z, "grad_delta_bias": g.DeltaBias, "grad_h0": g.H0}
	for name := range dst {
		got[name] = widen(back[name])
	}
	compareFixture(t, "float32", fx, got, 1e-4)
}

func compareFixture(t *testing.T, label string, fx fixture, got map[string][]float64, tol float64) {
	t.Helper()
	names := make([]string, 0, len(fx.want))
	for n := range fx.want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		g, ok := got[n]
		if !ok {
			t.Errorf("%s: fixture tensor %s has no counterpart", label, n)
			continue
		}
		if len(g) != len(fx.want[n]) {
			t.Errorf("%s: %s has %d elements, fixture %d", label, n, len(g), len(fx.want[n]))
			continue
		}
		e := testutil.RelL2(g, fx.want[n])
		t.Logf("%s %-16s rel L2 %.3g", label, n, e)
		testutil.CheckErr(t, label+": "+n+" rel L2", e, tol)
	}
}

func f32(x []float64) []float32 {
	if x == nil {
		return nil
	}
	return testutil.Convert[float32](x)
}

func toF32(in Inputs[float64]) Inputs[float32] {
	return Inputs[float32]{U: f32(in.U), Delta: f32(in.Delta), A: f32(in.A), B: f32(in.B), C: f32(in.C),
		D: f32(in.D), Z: f32(in.Z), DeltaBias: f32(in.DeltaBias), H0: f32(in.H0), Resets: in.Resets}
}
