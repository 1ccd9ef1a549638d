package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/internal/gpu"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/optim"
	"github.com/mambago/mamba/train"
)

// deviceFlags adds --device and --precision to a command's flags.
func deviceFlags(fs *pflag.FlagSet) (device, precision *string) {
	device = fs.String("device", train.DeviceCPU, "where to compute: cpu, or cuda (the first NVIDIA GPU; needs its driver and cuBLAS)")
	precision = fs.String("precision", "fp32", "products in fp32, tf32 or bf16 (tf32 and bf16: --device cuda only)")
	return device, precision
}

// gpuError makes a missing driver, GPU or cuBLAS bad input (exit status 2).
func gpuError(err error) error {
	if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) || errors.Is(err, cuda.ErrNoBLAS) {
		return usageError{err}
	}
	return err
}

// openGPU opens the first GPU, or says why there is none (exit status 2).
func openGPU() (*cuda.Device, error) {
	d, err := cuda.Open(0)
	if err != nil {
		return nil, gpuError(fmt.Errorf("--device cuda: %w", err))
	}
	return d, nil
}

// benchCUDA is bench on the GPU: the training step of gpu.Trainer (the step captured into a CUDA
// graph) with the GPU's AdamW, the per-op times of profiled steps (CUDA events around every kernel
// call), the cuBLAS product peak at the same precision, and gpu.Decoder's generation.
func benchCUDA(cfg train.Config, steps int, prec cuda.Precision) (_ *benchResult, err error) {
	mc, B, L := cfg.Model, cfg.Data.BatchSize, cfg.Data.SeqLen
	d, err := openGPU()
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, d.Close()) }()
	be, err := d.NewBackend(prec)
	if err != nil {
		return nil, err
	}
	defer be.Close()
	info := d.Info()
	r := &benchResult{Params: mc.NumParams(), DModel: mc.DModel, NLayer: mc.NLayer, Vocab: mc.VocabSize, Batch: B, SeqLen: L,
		Steps: steps, Threads: runtime.GOMAXPROCS(0), FLOPsPerToken: mc.FLOPsPerToken(L), Device: fmt.Sprintf("cuda: %s (%s)", info.Name, info.Image),
		Precision: prec.String(), BLAS: fmt.Sprintf("cuBLAS %d (%s)", info.BLASVersion, info.BLASPath),
		EstimatedMemoryBytes: mc.TrainingBytes(B, L)}
	m, err := layers.New(mc, cfg.Run.Seed)
	if err != nil {
		return nil, usageError{err}
	}
	tr, err := gpu.NewTrainer(be, m, B, L)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	var ps []optim.Param
	for _, p := range m.Params() {
		ps = append(ps, optim.Param{Name: p.Name, Value: p.Value, Grad: p.Grad, NoDecay: p.NoDecay})
	}
	host, err := optim.New(ps, cfg.Optim)
	if err != nil {
		return nil, usageError{err}
	}
	if err := tr.Optimize(cfg.Optim, host.State()); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Run.Seed, 7))
	ids, tg := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(mc.VocabSize))
	}
	for i := range tg {
		tg[i] = ids[(i+1)%len(ids)]
	}
	step := func() error {
		if _, err := tr.Step(ids, tg, nil); err != nil {
			return err
		}
		if _, err := tr.GradNorm(); err != nil {
			return err
		}
		return tr.Update(cfg.Optim.LR)
	}
	for range 3 { // the first step is launched op by op, then captured; the rest replay the graph
		if err := step(); err != nil {
			return nil, err
		}
	}
	r.KernelCalls = tr.Executor().Launches()
	captured, why := tr.Executor().Captured()
	r.Graph = fmt.Sprint(captured)
	if why != nil {
		r.Graph = "no: " + why.Error()
	}
	start := time.Now()
	for range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := d.Sync(); err != nil {
		return nil, err
	}
	perStep := time.Since(start).Seconds() / float64(steps)
	r.StepMS = 1e3 * perStep
	r.TokensPerS = float64(B*L) / perStep
	r.AchievedGFLOPs = r.FLOPsPerToken * r.TokensPerS / 1e9
	if r.Ops, err = profileCUDA(tr, step, min(steps, 3)); err != nil {
		return nil, err
	}
	if r.SgemmGFLOPs, err = gemmPeak(d, prec); err != nil {
		return nil, err
	}
	r.MFU = r.AchievedGFLOPs / r.SgemmGFLOPs
	for _, b := range []int{1, 16} {
		rate, err := decodeRateCUDA(d, m, b, rng)
		if err != nil {
			return nil, err
		}
		if b == 1 {
			r.DecodeTokensPerSB1 = rate
		} else {
			r.DecodeTokensPerSB16 = rate
		}
	}
	return r, nil
}

// profileCUDA runs n profiled steps (op by op, CUDA events around every kernel call and around
// the optimizer's two phases) and returns the device time per step of each kind of op.
func profileCUDA(tr *gpu.Trainer, step func() error, n int) ([]benchOpRow, error) {
	p := gpu.NewProfile()
	if err := tr.SetProfile(p); err != nil {
		return nil, err
	}
	defer tr.SetProfile(nil)
	for range n {
		if err := step(); err != nil {
			return nil, err
		}
	}
	var rows []benchOpRow
	for _, e := range p.Entries {
		rows = append(rows, benchOpRow{Name: e.Name, MSPerStep: 1e3 * e.Time.Seconds() / float64(n), Calls: float64(e.Calls) / float64(n)})
	}
	return rows, nil
}

// gemmPeak is the best GFLOP/s of an n³ cuBLAS product at precision p on random operands, over at
// least five products and a quarter of a second: the ceiling MFU is measured against. n is 4096, or
// the first of 256, 512, … whose product takes a millisecond (on a slow stand-in for a GPU).
func gemmPeak(d *cuda.Device, p cuda.Precision) (float64, error) {
	best := 0.0
	for n := 256; n <= 4096; n *= 2 {
		gflops, ms, err := gemmRate(d, p, n)
		if err != nil {
			return 0, err
		}
		best = gflops
		if ms > 1 {
			break
		}
	}
	return best, nil
}

// gemmRate returns the best rate of n³ products at precision p and the time of the first.
func gemmRate(d *cuda.Device, p cuda.Precision, n int) (gflops, firstMS float64, err error) {
	x := make([]float32, n*n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	var bufs []cuda.Buffer
	defer func() {
		for _, b := range bufs {
			d.Free(b)
		}
	}()
	alloc := func(bytes int) (cuda.Buffer, error) {
		b, err := d.Alloc(bytes)
		if err == nil {
			bufs = append(bufs, b)
		}
		return b, err
	}
	a, err := alloc(4 * n * n)
	if err != nil {
		return 0, 0, err
	}
	c, err := alloc(4 * n * n)
	if err != nil {
		return 0, 0, err
	}
	if err := cuda.Upload(d, a, x); err != nil {
		return 0, 0, err
	}
	mul := func() error { return d.Gemm(false, true, n, n, n, 1, a, n, a, n, 0, c, n) }
	switch p {
	case cuda.BF16:
		h, err := alloc(2 * n * n)
		if err != nil {
			return 0, 0, err
		}
		if err := d.ToBF16(h, a, n*n); err != nil {
			return 0, 0, err
		}
		mul = func() error { return d.GemmBF16(false, true, n, n, n, 1, h, n, h, n, 0, c, n, false) }
	case cuda.TF32:
		if err := d.SetMath(cuda.MathTF32); err != nil {
			return 0, 0, err
		}
		defer d.SetMath(cuda.MathFP32)
	default:
		if err := d.SetMath(cuda.MathFP32); err != nil {
			return 0, 0, err
		}
	}
	e0, err := d.NewEvent()
	if err != nil {
		return 0, 0, err
	}
	defer e0.Close()
	e1, err := d.NewEvent()
	if err != nil {
		return 0, 0, err
	}
	defer e1.Close()
	if err := mul(); err != nil {
		return 0, 0, err
	}
	total := 0.0
	for runs := 0; runs < 5 || total < 250; runs++ {
		if err := errors.Join(e0.Record(), mul(), e1.Record()); err != nil {
			return 0, 0, err
		}
		ms, err := e1.Since(e0)
		if err != nil {
			return 0, 0, err
		}
		if runs == 0 {
			firstMS = ms
			if ms > 1 && n < 4096 {
				return float64(2*n*n*n) / (ms * 1e-3) / 1e9, ms, nil
			}
		}
		total += ms
		gflops = max(gflops, float64(2*n*n*n)/(ms*1e-3)/1e9)
	}
	return gflops, firstMS, nil
}

// decodeRateCUDA is the tokens/s of gpu.Decoder at a batch size (timeDecode, without a limit on
// the steps: the first warm-up step captures the graph).
func decodeRateCUDA(d *cuda.Device, m *layers.Model, batch int, rng *rand.Rand) (float64, error) {
	dec, err := gpu.NewDecoder(d, m, batch)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	return timeDecode(dec, m.Config().VocabSize, math.MaxInt, rng)
}
