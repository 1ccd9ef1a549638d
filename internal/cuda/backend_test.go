package cuda

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/testutil"
)

// backendSpecs are specs of every kind the backend builds, with their options on and off.
func backendSpecs(t *testing.T, r *rand.Rand) []kernel.Spec {
	ids, err := kernel.NewIDs(2*9, 11)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := kernel.NewTargets(2*9, 11)
	if err != nil {
		t.Fatal(err)
	}
	v, tg := make([]int32, ids.Len()), make([]int32, targets.Len())
	for i := range v {
		v[i], tg[i] = int32(r.IntN(11)), int32(r.IntN(11))
	}
	tg[3] = kernel.IgnoreIndex
	resets, err := kernel.NewResets(2 * 9)
	if err != nil {
		t.Fatal(err)
	}
	flags := make([]uint8, resets.Len())
	flags[4], flags[9+2], flags[9+3] = 1, 1, 1
	if err := firstErr(ids.Set(v), targets.Set(tg), resets.Set(flags)); err != nil {
		t.Fatal(err)
	}
	return []kernel.Spec{
		kernel.RMSNorm{Rows: 18, Dim: 40, Eps: 1e-5},
		kernel.Linear{Rows: 18, In: 24, Out: 40, Lo: 0, Hi: 40},
		kernel.Linear{Rows: 18, In: 24, Out: 40, Lo: 8, Hi: 29, Bias: true},
		kernel.Linear{Rows: 18, In: 24, Out: 40, Lo: 20, Hi: 40, Bias: true, Residual: true},
		kernel.Linear{Rows: 18, In: 1, Out: 33, Lo: 0, Hi: 33, Residual: true},
		kernel.GEMM{M: 9, N: 13, K: 7},
		kernel.GEMM{M: 9, N: 13, K: 7, TransA: true},
		kernel.GEMM{M: 9, N: 13, K: 7, TransB: true},
		kernel.GEMM{M: 9, N: 13, K: 7, TransA: true, TransB: true},
		kernel.Conv1d{Batch: 2, Len: 9, Channels: 33, Width: 4, Bias: true, SiLU: true},
		kernel.Conv1d{Batch: 2, Len: 9, Channels: 5, Width: 3},
		kernel.Gate{Rows: 18, Cols: 7},
		kernel.Add{Shape: []int{18, 7}},
		kernel.Columns{Rows: 18, Width: 33, Lo: 1, Hi: 17},
		kernel.Broadcast{Rows: 18, Cols: 16},
		kernel.Embedding{IDs: ids, Vocab: 16, Dim: 12},
		kernel.CrossEntropy{Targets: targets, Vocab: 16},
		kernel.Scan{Batch: 2, Len: 9, Channels: 33, State: 16, Softplus: true, D: true, Z: true, DeltaBias: true},
		kernel.Scan{Batch: 2, Len: 9, Channels: 7, State: 3},
		kernel.Conv1d{Batch: 2, Len: 9, Channels: 33, Width: 4, Bias: true, SiLU: true, Resets: resets},
		kernel.Scan{Batch: 2, Len: 9, Channels: 33, State: 16, Softplus: true, D: true, Z: true, DeltaBias: true, Resets: resets},
	}
}

// TestCUDABackendMatchesCPU runs every kind of spec on the backend and on kernel.CPU with the same
// random inputs and upstream gradient and compares the outputs and every input gradient.
func TestCUDABackendMatchesCPU(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 9))
	for _, prec := range []Precision{FP32, TF32, BF16} {
		be, err := d.NewBackend(prec)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		tol := map[Precision]float64{FP32: 2e-5, TF32: 3e-3, BF16: 2e-2}[prec]
		for _, s := range backendSpecs(t, r) {
			_, products := s.(kernel.Linear)
			if _, ok := s.(kernel.GEMM); ok {
				products = true
			}
			if prec != FP32 && !products {
				continue // the precision changes only the products
			}
			t.Run(fmt.Sprintf("%v/%s", prec, s), func(t *testing.T) {
				backendCase(t, d, be, s, r, tol)
			})
		}
	}
}

func backendCase(t *testing.T, d *Device, be *Backend, s kernel.Spec, r *rand.Rand, tol float64) {
	ck, err := kernel.CPU{}.New(s)
	if err != nil {
		t.Fatal(err)
	}
	gk, err := be.New(s)
	if err != nil {
		t.Fatal(err)
	}
	defer gk.(interface{ Close() error }).Close()
	shapes := s.Inputs()
	in64 := make([][]float64, len(shapes))
	for i, sh := range shapes {
		in64[i] = normals(r, kernel.Size(sh), 1)
	}
	dout64 := normals(r, kernel.Size(s.Output()), 1)
	in32 := make([][]float32, len(shapes))
	din32 := make([][]float32, len(shapes))
	for i := range in64 {
		in32[i] = testutil.Convert[float32](in64[i])
		din32[i] = make([]float32, len(in64[i]))
	}
	out32 := make([]float32, kernel.Size(s.Output()))
	ck.Forward(in32, out32)
	ck.Backward(in32, testutil.Convert[float32](dout64), din32)

	if st, ok := gk.(Staged); ok {
		if err := st.Stage(); err != nil {
			t.Fatal(err)
		}
	}
	din := make([]Buffer, len(shapes))
	inB := make([]Buffer, len(shapes))
	for i := range in64 {
		inB[i] = f32(t, d, in64[i])
		din[i] = poisoned(t, d, len(in64[i]))
	}
	out := poisoned(t, d, len(out32))
	gk.Forward(inB, out)
	gk.Backward(inB, f32(t, d, dout64), din)
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{"out": host(t, d, out)}
	want := map[string][]float64{"out": testutil.Convert[float64](out32)}
	for i := range din {
		got[fmt.Sprintf("d%d", i)] = host(t, d, din[i])
		want[fmt.Sprintf("d%d", i)] = testutil.Convert[float64](din32[i])
	}
	closeAll(t, s.String(), got, want, tol)
}

func TestBackendRefusesUnknownSpecs(t *testing.T) {
	be := &Backend{}
	if _, err := be.New(kernel.Conv1d{Batch: 1, Len: 2, Channels: 3, Width: 2, State: true}); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("a conv with a state: %v", err)
	}
	if _, err := be.New(kernel.RMSNorm{Rows: 0, Dim: 1, Eps: 1}); err == nil {
		t.Error("an invalid spec was accepted")
	}
	if _, err := ParsePrecision("fp16"); err == nil {
		t.Error("fp16 parsed")
	}
	for i, n := range Precisions {
		if p, err := ParsePrecision(n); err != nil || int(p) != i || p.String() != n {
			t.Errorf("%s: %v, %v", n, p, err)
		}
	}
}
