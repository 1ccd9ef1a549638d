package cuda

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/scan"
)

// fixtureDir is $SCAN_FIXTURES_DIR, or the shared/fixtures folder beside the repository root.
func fixtureDir() string {
	if d := os.Getenv("SCAN_FIXTURES_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "fixtures")
}

// scanFixture reads a scan_*.safetensors case (mamba_ssm's layouts: u, delta, z, dout and their
// gradients (batch, dim, L); B, C and theirs (batch, N, L)) into token-major tensors keyed by the
// names runScan uses.
func scanFixture(t *testing.T, path string) (scanCase, scanData, map[string][]float64) {
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
	s := scan.Shape{Batch: meta("batch"), Len: meta("L"), Channels: meta("dim"), State: meta("N")}
	sp, err := strconv.ParseBool(f.Metadata["delta_softplus"])
	if err != nil {
		t.Fatalf("%s: metadata delta_softplus: %v", path, err)
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
		rows := 0
		switch name {
		case "u", "delta", "z", "out", "dout", "grad_u", "grad_delta", "grad_z":
			rows = s.Channels
		case "B", "C", "grad_B", "grad_C":
			rows = s.State
		default:
			return x
		}
		if !slices.Equal(shape, []int{s.Batch, rows, s.Len}) {
			t.Fatalf("%s: %s has shape %v, want %v", path, name, shape, []int{s.Batch, rows, s.Len})
		}
		y := make([]float64, len(x))
		for b := range s.Batch {
			for i := range rows {
				for l := range s.Len {
					y[(b*s.Len+l)*rows+i] = x[(b*rows+i)*s.Len+l]
				}
			}
		}
		return y
	}
	x := scanData{in: scan.Inputs[float64]{U: get("u"), Delta: get("delta"), A: get("A"), B: get("B"), C: get("C"),
		D: get("D"), Z: get("z"), DeltaBias: get("delta_bias"), H0: get("h0")}, dout: get("dout")}
	c := scanCase{s: s, softplus: sp, D: x.in.D != nil, Z: x.in.Z != nil, bias: x.in.DeltaBias != nil, h0: x.in.H0 != nil}
	want := map[string][]float64{}
	for fname, name := range map[string]string{"out": "out", "last_state": "last", "grad_u": "dU", "grad_delta": "dDelta",
		"grad_A": "dA", "grad_B": "dB", "grad_C": "dC", "grad_D": "dD", "grad_z": "dZ", "grad_delta_bias": "dBias", "grad_h0": "dH0"} {
		if v := get(fname); v != nil {
			want[name] = v
		}
	}
	if x.dout == nil || want["out"] == nil {
		t.Fatalf("%s: no dout or out", path)
	}
	return c, x, want
}

// TestCUDAScanFixtures runs the PyTorch-made float64 cases (relative L2 ≤ 1e-4 in float32).
func TestCUDAScanFixtures(t *testing.T) {
	d := gpu(t)
	paths, err := filepath.Glob(filepath.Join(fixtureDir(), "scan_*.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no scan_*.safetensors in %s (set SCAN_FIXTURES_DIR)", fixtureDir())
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, x, want := scanFixture(t, path)
			k, err := d.NewScan(c.s, ScanOptions{Softplus: c.softplus})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			got := runScan(t, d, k, c, x)
			for name := range got {
				if _, ok := want[name]; !ok {
					delete(got, name) // gradients of absent inputs (zeros' gradients) have no fixture tensor
				}
			}
			closeAll(t, filepath.Base(path), got, want, 1e-4)
		})
	}
}
