package train

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mambago/mamba/configs"
	"github.com/mambago/mamba/internal/cuda/cudatest"
	"github.com/mambago/mamba/internal/testutil"
)

// TestHostEmulator runs this package's CUDA tests on the host emulator of the kernels (fewer steps).
func TestHostEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("not run in -short mode: emulated training takes minutes")
	}
	cudatest.OnEmulator(t, "CUDA")
}

func TestDeviceConfig(t *testing.T) {
	for _, c := range []struct {
		sets []string
		want string // "" = valid
	}{
		{[]string{"run.device=cuda"}, ""},
		{[]string{"run.device=cuda", "run.precision=bf16"}, ""},
		{[]string{"run.device=cuda", "run.precision=tf32"}, ""},
		{[]string{"run.device=gpu"}, `run.device must be "cpu" or "cuda"`},
		{[]string{"run.device=cuda", "run.precision=fp16"}, "run.precision"},
		{[]string{"run.precision=bf16"}, "runs on the GPU only"},
	} {
		_, err := ParseConfig([]byte(`{}`), c.sets)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.sets, err, c.want)
		}
	}
}

// quickstart is configs/quickstart.json for steps steps, evaluated and checkpointed at the end,
// on device; on the emulator with batches of 2 sequences and one evaluation batch.
func quickstart(t *testing.T, steps int, device string) Config {
	t.Helper()
	raw, err := configs.FS.ReadFile(configs.Quickstart)
	if err != nil {
		t.Fatal(err)
	}
	sets := []string{"run.device=" + device, "optim.warmup_steps=5"}
	if cudatest.Emulated() {
		sets = append(sets, "data.batch_size=2", "data.eval_batches=1")
	}
	cfg, err := ParseConfig(raw, sets)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Run.MaxSteps, cfg.Run.EvalEvery, cfg.Run.CheckpointEvery, cfg.Run.LogEvery = steps, 0, 0, 1
	return cfg
}

// quickstartSteps is 50 on a GPU and 6 on the emulator.
func quickstartSteps() int {
	if cudatest.Emulated() {
		return 6
	}
	return 50
}

// TestCUDAQuickstart trains the quickstart (configs/quickstart.json) for 50 steps on the CPU and on
// the GPU: the losses follow each other and the GPU's run ends at the CPU's accuracy.
func TestCUDAQuickstart(t *testing.T) {
	cudatest.Device(t)
	steps := quickstartSteps()
	runs := map[string]*Summary{}
	metrics := map[string][]Metric{}
	for _, dev := range []string{DeviceCPU, DeviceCUDA} {
		out := filepath.Join(t.TempDir(), dev)
		s, err := Run(context.Background(), quickstart(t, steps, dev), Options{Out: out})
		if err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		runs[dev], metrics[dev] = s, readMetrics(t, out)
	}
	cpu, gpu := runs[DeviceCPU], runs[DeviceCUDA]
	for i, m := range metrics[DeviceCUDA] {
		w := metrics[DeviceCPU][i]
		if m.Loss == nil || w.Loss == nil {
			t.Fatalf("step %d: no loss (gpu %v, cpu %v)", m.Step, m.Loss, w.Loss)
		}
		if e := math.Abs(*m.Loss-*w.Loss) / *w.Loss; !testutil.Within(e, 2e-3) {
			t.Errorf("step %d: loss %.6f on the GPU, %.6f on the CPU", m.Step, *m.Loss, *w.Loss)
		}
	}
	if cpu.Eval.ValAccuracy == nil || gpu.Eval.ValAccuracy == nil {
		t.Fatal("no validation accuracy")
	}
	ca, ga := *cpu.Eval.ValAccuracy, *gpu.Eval.ValAccuracy
	t.Logf("after %d steps: accuracy cpu %.4f gpu %.4f, val loss cpu %.5f gpu %.5f", steps, ca, ga, *cpu.Eval.ValLoss, *gpu.Eval.ValLoss)
	if !testutil.Within(math.Abs(ga-ca), 0.01) {
		t.Errorf("validation accuracy %.4f on the GPU, %.4f on the CPU", ga, ca)
	}
	if e := math.Abs(*gpu.Eval.ValLoss-*cpu.Eval.ValLoss) / *cpu.Eval.ValLoss; !testutil.Within(e, 5e-3) {
		t.Errorf("validation loss %.5f on the GPU, %.5f on the CPU", *gpu.Eval.ValLoss, *cpu.Eval.ValLoss)
	}
}

// TestCUDAResumeAcrossDevices trains 5 steps on one device, resumes on the other for 5 more, and
// compares with 10 steps on the CPU: checkpoints are the same files on both devices.
func TestCUDAResumeAcrossDevices(t *testing.T) {
	cudatest.Device(t)
	ref := filepath.Join(t.TempDir(), "ref")
	if _, err := Run(context.Background(), quickstart(t, 10, DeviceCPU), Options{Out: ref}); err != nil {
		t.Fatal(err)
	}
	want := readMetrics(t, ref)
	for _, devs := range [][2]string{{DeviceCUDA, DeviceCPU}, {DeviceCPU, DeviceCUDA}} {
		t.Run(devs[0]+"-then-"+devs[1], func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			if _, err := Run(context.Background(), quickstart(t, 5, devs[0]), Options{Out: out}); err != nil {
				t.Fatal(err)
			}
			cfg, err := ResumeConfig(out, []string{"run.max_steps=10", "run.device=" + devs[1]})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Run(context.Background(), cfg, Options{Out: out, Resume: true}); err != nil {
				t.Fatal(err)
			}
			got := readMetrics(t, out)
			if len(got) != len(want) {
				t.Fatalf("%d metric lines, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Step != want[i].Step || got[i].Loss == nil {
					t.Fatalf("line %d: step %d loss %v", i, got[i].Step, got[i].Loss)
				}
				if e := math.Abs(*got[i].Loss-*want[i].Loss) / *want[i].Loss; !testutil.Within(e, 1e-3) {
					t.Errorf("step %d: loss %.6f after changing device, %.6f on the CPU alone", got[i].Step, *got[i].Loss, *want[i].Loss)
				}
			}
			if _, err := os.Stat(filepath.Join(out, checkpointsDir, "step-10")); err != nil {
				t.Errorf("no final checkpoint: %v", err)
			}
		})
	}
}
