package train

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/internal/gpu"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/optim"
)

// Devices a run trains on (run.device).
const (
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// checkDevice validates run.device and run.precision.
func checkDevice(r RunConfig) error {
	if r.Device != DeviceCPU && r.Device != DeviceCUDA {
		return fmt.Errorf("run.device must be %q or %q, got %q", DeviceCPU, DeviceCUDA, r.Device)
	}
	p, err := cuda.ParsePrecision(r.Precision)
	if err != nil {
		return fmt.Errorf("run.precision: %v", err)
	}
	if p != cuda.FP32 && r.Device == DeviceCPU {
		return fmt.Errorf("run.precision %s runs on the GPU only: set run.device=cuda, or run.precision=fp32 on the CPU", p)
	}
	return nil
}

// onGPU is the GPU side of a run on run.device cuda: the device, the backend of its precision and
// the trainer that holds the parameters, gradients and optimizer state there.
type onGPU struct {
	dev *cuda.Device
	be  *cuda.Backend
	tr  *gpu.Trainer
}

// mambaOf returns the Mamba of package layers that m wraps: the model the GPU runs.
func mambaOf(m Model) (*layers.Model, bool) {
	l, ok := m.(lm)
	if !ok {
		return nil, false
	}
	mm, ok := l.LM.(*layers.Model)
	return mm, ok
}

// compileOn compiles m for cfg's batch shape on cfg's device: the CPU's Stepper, or a GPU trainer.
func compileOn(cfg Config, m Model) (Stepper, *onGPU, error) {
	d := cfg.Data
	if cfg.Run.Device != DeviceCUDA {
		s, err := m.Compile(d.BatchSize, d.SeqLen)
		return s, nil, err
	}
	mm, ok := mambaOf(m)
	if !ok {
		return nil, nil, fmt.Errorf("run.device cuda: the %s model does not run on the GPU yet (the Mamba does)", m.Config().Arch)
	}
	prec, err := cuda.ParsePrecision(cfg.Run.Precision)
	if err != nil {
		return nil, nil, err
	}
	dev, err := cuda.Open(0)
	if err != nil {
		return nil, nil, fmt.Errorf("run.device cuda: %w", err)
	}
	g := &onGPU{dev: dev}
	if g.be, err = dev.NewBackend(prec); err == nil {
		g.tr, err = gpu.NewTrainer(g.be, mm, d.BatchSize, d.SeqLen)
	}
	if err != nil {
		g.close()
		return nil, nil, fmt.Errorf("run.device cuda: %w", err)
	}
	return g.tr, g, nil
}

// note is the run's log line about the device.
func (g *onGPU) note() string {
	i := g.dev.Info()
	return fmt.Sprintf("device: cuda %d, %s (compute capability %d.%d, %d multiprocessors, %.0f GB; kernels: %s; cuBLAS %d), products in %s",
		i.Ordinal, i.Name, i.Major, i.Minor, i.Multiprocessors, float64(i.MemoryBytes)/1e9, i.Image, i.BLASVersion, g.be.Precision())
}

func (g *onGPU) close() error {
	if g == nil {
		return nil
	}
	var errs []error
	if g.tr != nil {
		errs = append(errs, g.tr.Close())
	}
	if g.be != nil {
		errs = append(errs, g.be.Close())
	}
	return errors.Join(append(errs, g.dev.Close())...)
}

// startGPU hands the optimizer's state (fresh or restored) and the accumulation to the GPU, which
// from then on holds them; the host optimizer keeps only what checkpoints read back (pull).
func (r *runner) startGPU() error {
	if err := r.gpu.tr.Accumulate(r.cfg.Optim.GradAccum); err != nil {
		return err
	}
	r.acc = nil
	return r.gpu.tr.Optimize(r.cfg.Optim, r.opt.State())
}

// beginUpdate starts the gradient sum of an update's micro-batches on the GPU afresh (an update
// abandoned by a signal leaves a partial sum); a no-op on the CPU, whose accumulator starts afresh
// at its first Add.
func (r *runner) beginUpdate() error {
	if r.gpu == nil {
		return nil
	}
	return r.gpu.tr.Accumulate(r.cfg.Optim.GradAccum)
}

// gradNorm is the global gradient norm of the step's (mean) gradients.
func (r *runner) gradNorm() (float64, error) {
	if r.gpu != nil {
		return r.gpu.tr.GradNorm()
	}
	return r.opt.GradNorm(), nil
}

// update takes the optimizer step of learning rate lr, clipped by the gradient norm.
func (r *runner) update(lr, norm float64) error {
	if r.gpu != nil {
		return r.gpu.tr.Update(lr) // the clip scale of norm was computed on the device by gradNorm
	}
	r.opt.Step(lr, optim.ClipScale(norm, r.cfg.Optim.GradClip))
	return nil
}

// pull copies the GPU's parameters into the model and its optimizer moments into the host
// optimizer, for a checkpoint (a no-op on the CPU).
func (r *runner) pull() error {
	if r.gpu == nil {
		return nil
	}
	st := r.opt.State()
	st.Names = slices.Clone(st.Names)
	if err := errors.Join(r.gpu.tr.Pull(), r.gpu.tr.OptimizerState(&st)); err != nil {
		return fmt.Errorf("copying the GPU's state for a checkpoint: %w", err)
	}
	return r.opt.Restore(st)
}
