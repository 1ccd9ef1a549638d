package gpu

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/internal/cuda/cudatest"
	"github.com/mambago/mamba/internal/testutil"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/optim"
)

// emuTests are the CUDA tests of this package that TestHostEmulator runs.
const emuTests = `CUDA`

// TestHostEmulator runs the CUDA tests of this package on the host emulator of the kernels, with
// small shapes.
func TestHostEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("not run in -short mode: the emulated training steps take a minute")
	}
	run := emuTests
	if v := os.Getenv("MAMBA_CUDA_EMU_RUN"); v != "" {
		run = v
	}
	cudatest.OnEmulator(t, run)
}

// parityCase is a model and batch shape of the CPU-vs-GPU tests; packed batches hold several
// documents per row.
type parityCase struct {
	name          string
	cfg           layers.Config
	batch, seqLen int
	packed        bool
}

// parityCases are the bench model (vocabulary 256, d_model 256, 4 layers, 8 × 512) on a GPU, and
// small models with every option on the emulator.
func parityCases() []parityCase {
	cfg := layers.DefaultConfig()
	if !cudatest.Emulated() {
		cfg.VocabSize, cfg.DModel, cfg.NLayer = 256, 256, 4
		return []parityCase{{"bench", cfg, 8, 512, false}, {"bench-packed", cfg, 8, 512, true}}
	}
	cfg.VocabSize, cfg.DModel, cfg.NLayer = 20, 16, 2
	biased := cfg
	biased.Bias, biased.ConvBias, biased.DtRank = true, false, 3
	lti := cfg
	lti.Selective = false
	return []parityCase{{"small", cfg, 2, 11, false}, {"packed", cfg, 2, 11, true}, {"biased", biased, 3, 5, true}, {"lti", lti, 2, 6, false}}
}

// resetsOf marks document starts at random in a packed case (nil otherwise), with their targets
// ignored as the data loader does.
func resetsOf(r *rand.Rand, c parityCase, targets []int32) []uint8 {
	if !c.packed {
		return nil
	}
	f := make([]uint8, c.batch*c.seqLen)
	for i := range f {
		if r.IntN(7) == 0 {
			f[i] = 1
			if i > 0 {
				targets[i-1] = -1
			}
		}
	}
	return f
}

// batchOf draws ids and next-token targets, with one ignored target.
func batchOf(r *rand.Rand, n, vocab int) (ids, targets []int32) {
	ids, targets = make([]int32, n), make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.IntN(vocab))
	}
	for i := range targets {
		targets[i] = ids[(i+1)%n]
	}
	targets[n/2] = -1
	return ids, targets
}

// TestCUDATrainerMatchesCPU runs one training step on the CPU (layers.Trainer) and on the GPU
// (fp32) from the same parameters and batch: the losses agree within 1e-5 and every gradient within
// 1e-3 relative L2. A second GPU step replays the captured CUDA graph and must repeat the first
// bitwise.
func TestCUDATrainerMatchesCPU(t *testing.T) {
	d := cudatest.Device(t)
	for _, c := range parityCases() {
		t.Run(c.name, func(t *testing.T) {
			m, err := layers.New(c.cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(5, 6))
			ids, tg := batchOf(r, c.batch*c.seqLen, c.cfg.VocabSize)
			resets := resetsOf(r, c, tg)
			cpu, err := m.Compile(c.batch, c.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			want, err := cpu.Step(ids, tg, resets)
			if err != nil {
				t.Fatal(err)
			}
			wantGrads := grads(m)

			tr := newTrainer(t, d, cuda.FP32, m, c.batch, c.seqLen)
			t.Logf("%d kernel calls per step, %.1f MB of activations", tr.Executor().Launches(), float64(tr.Executor().ArenaBytes())/1e6)
			got, err := tr.Step(ids, tg, resets)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("loss: cpu %.7f, gpu %.7f", want, got)
			if e := math.Abs(got - want); !testutil.Within(e, 1e-5) {
				t.Errorf("loss %v on the GPU, %v on the CPU (|Δ| %.3g > 1e-5)", got, want, e)
			}
			if err := tr.PullGrads(); err != nil {
				t.Fatal(err)
			}
			first := grads(m)
			for i, p := range m.Params() {
				e := testutil.RelL2(first[i], wantGrads[i])
				if !testutil.Within(e, 1e-3) {
					t.Errorf("%s: gradient rel L2 %.3g > 1e-3", p.Name, e)
				}
			}
			captured, why := tr.Executor().Captured()
			t.Logf("captured into a CUDA graph: %v %v", captured, why)
			again, err := tr.Step(ids, tg, resets)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.PullGrads(); err != nil {
				t.Fatal(err)
			}
			// cuBLAS may pick other algorithms while captured: equal within rounding, bitwise in
			// the emulator.
			bitwise := again == got
			if e := math.Abs(again-got) / math.Abs(got); !testutil.Within(e, 1e-6) {
				t.Errorf("the second step's loss %v differs from the first's %v", again, got)
			}
			for i, p := range m.Params() {
				bitwise = bitwise && sameBits(p.Grad, first[i])
				if e := testutil.RelL2(p.Grad, first[i]); !testutil.Within(e, 1e-5) {
					t.Errorf("%s: the second step's gradient differs from the first's (rel L2 %.3g)", p.Name, e)
				}
			}
			t.Logf("the replayed step repeats the first bitwise: %v", bitwise)
			if cudatest.Emulated() && !bitwise {
				t.Error("on the emulator the replayed step must repeat the first bitwise")
			}
		})
	}
}

// grads copies every Param.Grad.
func grads(m *layers.Model) [][]float32 {
	var g [][]float32
	for _, p := range m.Params() {
		g = append(g, append([]float32(nil), p.Grad...))
	}
	return g
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestCUDATrainerUpdates checks gradient accumulation, the optimizer and the copies back: two
// micro-batches accumulated on the GPU give the mean of their CPU gradients, GradNorm the CPU's
// norm, and an update from a restored optimizer state the CPU's parameters and moments.
func TestCUDATrainerUpdates(t *testing.T) {
	d := cudatest.Device(t)
	c := parityCases()[0]
	m, err := layers.New(c.cfg, 4)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	var ps []optim.Param
	for _, p := range m.Params() {
		ps = append(ps, optim.Param{Name: p.Name, Value: p.Value, Grad: p.Grad, NoDecay: p.NoDecay})
	}
	ocfg := optim.Defaults()
	ocfg.GradClip = 0.5
	host, err := optim.New(ps, ocfg)
	if err != nil {
		t.Fatal(err)
	}
	// One CPU update first, so that the optimizer state handed to the GPU is not zero.
	cpu, err := m.Compile(c.batch, c.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	ids, tg := batchOf(r, c.batch*c.seqLen, c.cfg.VocabSize)
	if _, err := cpu.Step(ids, tg, nil); err != nil {
		t.Fatal(err)
	}
	host.Step(1e-3, optim.ClipScale(host.GradNorm(), ocfg.GradClip))

	tr := newTrainer(t, d, cuda.FP32, m, c.batch, c.seqLen)
	if err := firstErr(tr.Optimize(ocfg, host.State()), tr.Accumulate(2)); err != nil {
		t.Fatal(err)
	}
	acc := optim.NewAccumulator(ps)
	for range 2 {
		ids, tg := batchOf(r, c.batch*c.seqLen, c.cfg.VocabSize)
		if _, err := cpu.Step(ids, tg, nil); err != nil {
			t.Fatal(err)
		}
		acc.Add()
		if _, err := tr.Step(ids, tg, nil); err != nil {
			t.Fatal(err)
		}
	}
	acc.Mean()
	wantNorm := host.GradNorm()
	norm, err := tr.GradNorm()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gradient norm: cpu %.6g, gpu %.6g", wantNorm, norm)
	if e := math.Abs(norm-wantNorm) / wantNorm; !testutil.Within(e, 1e-4) {
		t.Errorf("gradient norm %v on the GPU, %v on the CPU", norm, wantNorm)
	}
	host.Step(2e-3, optim.ClipScale(wantNorm, ocfg.GradClip))
	want := make([][]float32, len(ps))
	for i, p := range ps {
		want[i] = append([]float32(nil), p.Value...)
	}
	if err := tr.Update(2e-3); err != nil {
		t.Fatal(err)
	}
	if err := tr.Pull(); err != nil {
		t.Fatal(err)
	}
	hs := host.State()
	st := optim.State{Names: hs.Names}
	for i := range hs.M {
		st.M = append(st.M, make([]float32, len(hs.M[i])))
		st.V = append(st.V, make([]float32, len(hs.V[i])))
	}
	if err := tr.OptimizerState(&st); err != nil {
		t.Fatal(err)
	}
	if st.Updates != host.Updates() {
		t.Errorf("%d updates on the GPU, %d on the CPU", st.Updates, host.Updates())
	}
	for i, p := range ps {
		for name, pair := range map[string][2][]float32{"value": {p.Value, want[i]}, "m": {st.M[i], hs.M[i]}, "v": {st.V[i], hs.V[i]}} {
			if e := testutil.RelL2(pair[0], pair[1]); !testutil.Within(e, 1e-3) {
				t.Errorf("%s %s: rel L2 %.3g between GPU and CPU", p.Name, name, e)
			}
		}
	}
}

// TestCUDAPrecisions trains a step in tf32 and bf16: the loss and gradients stay near fp32's.
func TestCUDAPrecisions(t *testing.T) {
	d := cudatest.Device(t)
	c := parityCases()[0]
	m, err := layers.New(c.cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	ids, tg := batchOf(rand.New(rand.NewPCG(9, 10)), c.batch*c.seqLen, c.cfg.VocabSize)
	var ref [][]float32
	var refLoss float64
	for _, p := range []cuda.Precision{cuda.FP32, cuda.TF32, cuda.BF16} {
		t.Run(p.String(), func(t *testing.T) {
			tr := newTrainer(t, d, p, m, c.batch, c.seqLen)
			loss, err := tr.Step(ids, tg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.PullGrads(); err != nil {
				t.Fatal(err)
			}
			if p == cuda.FP32 {
				ref, refLoss = grads(m), loss
				return
			}
			tol := map[cuda.Precision]float64{cuda.TF32: 2e-2, cuda.BF16: 1e-1}[p]
			t.Logf("loss %.6f (fp32 %.6f)", loss, refLoss)
			if e := math.Abs(loss-refLoss) / refLoss; !testutil.Within(e, tol/10) {
				t.Errorf("loss %v, fp32 %v", loss, refLoss)
			}
			worst, name := 0.0, ""
			for i, q := range m.Params() {
				e := testutil.RelL2(q.Grad, ref[i])
				if !testutil.Within(e, tol) {
					t.Errorf("%s: gradient rel L2 %.3g from fp32's > %g", q.Name, e, tol)
				}
				if e > worst {
					worst, name = e, q.Name
				}
			}
			t.Logf("largest gradient rel L2 from fp32's: %.3g (%s)", worst, name)
		})
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// newTrainer returns a Trainer of m on a new backend of d in precision p; both close when the
// test ends.
func newTrainer(t *testing.T, d *cuda.Device, p cuda.Precision, m *layers.Model, batch, seqLen int) *Trainer {
	t.Helper()
	be, err := d.NewBackend(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	tr, err := NewTrainer(be, m, batch, seqLen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}
