package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/internal/kernel"
	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/optim"
	"github.com/mambago/mamba/train"
)

const benchUsage = `Time training and generation of a model on random tokens.

Usage:
  train bench [--config FILE] [--arch mamba|transformer] [--d-model N] [--n-layer N]
              [--vocab-size N] [--d-state N] [--expand N] [--n-head N] [--d-ff N]
              [--batch-size N] [--seq-len N] [--steps N] [--json] [--cpuprofile FILE]
              [--device cpu|cuda] [--precision fp32|tf32|bf16]

It builds the model (the config's model and batch shape, changed by the model
flags), takes two warm-up steps, then times --steps training steps (forward,
backward, AdamW) on random tokens, and generation at batch 1 and 16 (after a
16-token prompt: the Mamba's recurrent step, the Transformer++'s key/value-cache
step).
It reports tokens/s, the achieved GFLOP/s (layers.Config.FLOPsPerToken), the
sgemm peak measured in the same process with the same number of threads
(a tiled 2048³ product), the MFU (achieved / peak), the time of each kind of
op, the BLAS in use and the vector path of the scan and the exp rows
(MAMBA_VECTOR=avx2 or avx512 sets it; run the bench once with each to compare
them). --json prints one JSON object instead of tables; --cpuprofile writes a
CPU profile of the timed steps (time in parallel.(*worker).await and
(*latch).wait is cores waiting for work).

With --device cuda the same is measured on the first NVIDIA GPU (a Mamba): the
step is the GPU trainer's (parameters, gradients and AdamW on the device, the
step replayed as a CUDA graph), the op times come from CUDA events around
every kernel, the peak is cuBLAS's 4096³ product at the same --precision, and
generation runs the GPU decoder.

Examples:
  train bench --config configs/bench.json
  train bench --config configs/bench-transformer.json
  GOMAXPROCS=2 train bench --config configs/bench.json --json
  train bench --d-model 768 --n-layer 24 --batch-size 8 --seq-len 512 --steps 3
  train bench --config configs/bench.json --device cuda
  train bench --d-model 768 --n-layer 24 --batch-size 16 --seq-len 2048 --device cuda --precision bf16

Flags:
`

// benchResult is what train bench measures; --json prints it.
type benchResult struct {
	Arch                 string       `json:"arch"`
	Params               int          `json:"params"`
	DModel               int          `json:"d_model"`
	NLayer               int          `json:"n_layer"`
	NHead                int          `json:"n_head,omitempty"` // transformer
	DFF                  int          `json:"d_ff,omitempty"`   // transformer
	Vocab                int          `json:"vocab_size"`
	Batch                int          `json:"batch_size"`
	SeqLen               int          `json:"seq_len"`
	Steps                int          `json:"steps"`
	Threads              int          `json:"gomaxprocs"`
	TokensPerS           float64      `json:"tokens_per_s"`
	StepMS               float64      `json:"step_ms"`
	FLOPsPerToken        float64      `json:"flops_per_token"`
	AchievedGFLOPs       float64      `json:"achieved_gflops"`
	SgemmGFLOPs          float64      `json:"sgemm_gflops"`
	MFU                  float64      `json:"mfu"`
	DecodeTokensPerSB1   float64      `json:"decode_tokens_per_s_b1"`
	DecodeTokensPerSB16  float64      `json:"decode_tokens_per_s_b16"`
	BLAS                 string       `json:"blas"`
	BLASCore             string       `json:"blas_core"`
	BLASWarning          string       `json:"blas_warning,omitempty"`
	VectorPath           string       `json:"vector_path"`
	Device               string       `json:"device,omitempty"`       // cuda: the GPU and the kernels' image
	Precision            string       `json:"precision,omitempty"`    // cuda: the products' precision
	Graph                string       `json:"cuda_graph,omitempty"`   // cuda: whether steps replay a CUDA graph
	KernelCalls          int          `json:"kernel_calls,omitempty"` // cuda: kernel calls of a training step's graph
	EstimatedMemoryBytes float64      `json:"estimated_memory_bytes"`
	Ops                  []benchOpRow `json:"ops"`
}

type benchOpRow struct {
	Name      string  `json:"name"`
	MSPerStep float64 `json:"ms_per_step"`
	Calls     float64 `json:"calls_per_step"`
}

func runBench(args []string, stdout io.Writer) error {
	fs := newFlags("bench", benchUsage, stdout)
	config := fs.String("config", "", "run config JSON file whose model and batch shape to time (default: the built-in defaults)")
	arch := fs.String("arch", "", "model architecture, mamba or transformer (overrides the config)")
	dModel := fs.Int("d-model", 0, "model width (overrides the config)")
	nLayer := fs.Int("n-layer", 0, "number of layers (overrides the config)")
	vocab := fs.Int("vocab-size", 0, "vocabulary size (overrides the config)")
	dState := fs.Int("d-state", 0, "SSM state size N (overrides the config)")
	expand := fs.Int("expand", 0, "d_inner / d_model (overrides the config)")
	nHead := fs.Int("n-head", 0, "attention heads of a transformer (overrides the config)")
	dFF := fs.Int("d-ff", 0, "SwiGLU width of a transformer (overrides the config)")
	batch := fs.Int("batch-size", 0, "sequences per step (overrides the config)")
	seqLen := fs.Int("seq-len", 0, "tokens per sequence (overrides the config)")
	steps := fs.Int("steps", 10, "training steps to time")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed training steps to this file (go tool pprof)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of tables")
	device, precision := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	prec, err := cuda.ParsePrecision(*precision)
	if err != nil {
		return usagef("--precision: %v", err)
	}
	switch {
	case *device != train.DeviceCPU && *device != train.DeviceCUDA:
		return usagef("--device %q: want cpu or cuda", *device)
	case *device == train.DeviceCPU && prec != cuda.FP32:
		return usagef("--precision %s runs on the GPU only (--device cuda)", prec)
	}
	cfg := train.DefaultConfig()
	if *config != "" {
		var err error
		if cfg, err = train.LoadConfig(*config, nil); err != nil {
			return usageError{err}
		}
	}
	for _, f := range []struct {
		name string
		v    int
		dst  *int
	}{
		{"d-model", *dModel, &cfg.Model.DModel}, {"n-layer", *nLayer, &cfg.Model.NLayer}, {"vocab-size", *vocab, &cfg.Model.VocabSize},
		{"d-state", *dState, &cfg.Model.DState}, {"expand", *expand, &cfg.Model.Expand},
		{"n-head", *nHead, &cfg.Model.NHead}, {"d-ff", *dFF, &cfg.Model.DFF},
		{"batch-size", *batch, &cfg.Data.BatchSize}, {"seq-len", *seqLen, &cfg.Data.SeqLen},
	} {
		if fs.Changed(f.name) {
			if f.v < 1 {
				return usagef("--%s %d: want at least 1", f.name, f.v)
			}
			*f.dst = f.v
		}
	}
	if fs.Changed("arch") {
		cfg.Model.Arch = *arch
	}
	if *steps < 1 {
		return usagef("--steps %d: want at least 1", *steps)
	}
	if cfg.Data.BatchSize < 1 || cfg.Data.SeqLen < 1 {
		return usagef("batch size %d and sequence length %d must be at least 1", cfg.Data.BatchSize, cfg.Data.SeqLen)
	}
	if err := cfg.Model.Validate(); err != nil {
		return usageError{err}
	}
	if *device == train.DeviceCUDA {
		if cfg.Model.IsTransformer() {
			return usagef("--device cuda: the transformer does not run on the GPU yet (the Mamba does)")
		}
		res, err := benchCUDA(cfg, *steps, prec)
		if err != nil {
			return err
		}
		return res.print(stdout, *asJSON)
	}
	need := cfg.Model.TrainingBytes(cfg.Data.BatchSize, cfg.Data.SeqLen)
	if avail, ok := availableMemory(); ok && need > float64(avail) {
		return usagef("the model (%d parameters, batch %d × %d) needs about %s to train and %s are available: make it smaller",
			cfg.Model.NumParams(), cfg.Data.BatchSize, cfg.Data.SeqLen, bytesString(need), bytesString(float64(avail)))
	}
	var profile *atomicfile.File
	var w io.Writer // nil without a profile (not a nil *File)
	if *cpuProfile != "" {
		var err error
		if profile, err = atomicfile.Create(*cpuProfile); err != nil {
			return usagef("--cpuprofile: %v", err)
		}
		w = profile
	}
	res, err := bench(cfg, *steps, w)
	if profile != nil {
		if err != nil {
			profile.Abort()
		} else if err = profile.Commit(); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	if err != nil {
		return err
	}
	return res.print(stdout, *asJSON)
}

// print writes the result as tables, or as one JSON object.
func (r *benchResult) print(w io.Writer, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	r.tables(w)
	return nil
}

// bench builds the model of cfg and measures it; with profile, it writes a CPU
// profile of the timed training steps there.
func bench(cfg train.Config, steps int, profile io.Writer) (*benchResult, error) {
	mc, B, L := cfg.Model, cfg.Data.BatchSize, cfg.Data.SeqLen
	info := kernel.BLAS()
	r := &benchResult{Arch: mc.Arch, Params: mc.NumParams(), DModel: mc.DModel, NLayer: mc.NLayer, Vocab: mc.VocabSize, Batch: B, SeqLen: L,
		Steps: steps, Threads: runtime.GOMAXPROCS(0), FLOPsPerToken: mc.FLOPsPerToken(L),
		BLAS: info.Lib, BLASCore: info.Core, BLASWarning: info.Warning, VectorPath: math32.Choice(), EstimatedMemoryBytes: mc.TrainingBytes(B, L)}
	if mc.IsTransformer() {
		r.NHead, r.DFF = mc.NHead, mc.FF()
	}
	m, err := layers.NewLM(mc, cfg.Run.Seed)
	if err != nil {
		return nil, usageError{err}
	}
	tr, err := m.Compile(B, L)
	if err != nil {
		return nil, usageError{err}
	}
	var ps []optim.Param
	for _, p := range m.Params() {
		ps = append(ps, optim.Param{Name: p.Name, Value: p.Value, Grad: p.Grad, NoDecay: p.NoDecay})
	}
	opt, err := optim.New(ps, cfg.Optim)
	if err != nil {
		return nil, usageError{err}
	}
	rng := rand.New(rand.NewPCG(cfg.Run.Seed, 7))
	ids, tg := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(mc.VocabSize))
	}
	for i := range tg {
		tg[i] = ids[(i+1)%len(ids)]
	}
	var optTime time.Duration
	step := func() error {
		if _, err := tr.Step(ids, tg, nil); err != nil {
			return err
		}
		start := time.Now()
		opt.Step(cfg.Optim.LR, optim.ClipScale(opt.GradNorm(), cfg.Optim.GradClip))
		optTime += time.Since(start)
		return nil
	}
	for range 2 {
		if err := step(); err != nil {
			return nil, err
		}
	}
	prof := autograd.NewProfile()
	tr.Profile(prof)
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return nil, err
		}
	}
	optTime = 0
	start := time.Now()
	for range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	elapsed := time.Since(start)
	tr.Profile(nil)
	if profile != nil {
		pprof.StopCPUProfile()
	}
	perStep := elapsed.Seconds() / float64(steps)
	r.StepMS = 1e3 * perStep
	r.TokensPerS = float64(B*L) / perStep
	r.AchievedGFLOPs = r.FLOPsPerToken * r.TokensPerS / 1e9
	for _, e := range prof.Entries() {
		r.Ops = append(r.Ops, benchOpRow{Name: e.Name, MSPerStep: 1e3 * e.Time.Seconds() / float64(steps), Calls: float64(e.Calls) / float64(steps)})
	}
	r.Ops = append(r.Ops, benchOpRow{Name: "AdamW (norm and update)", MSPerStep: 1e3 * optTime.Seconds() / float64(steps), Calls: 1})
	if r.SgemmGFLOPs, err = sgemmPeak(); err != nil {
		return nil, err
	}
	r.MFU = r.AchievedGFLOPs / r.SgemmGFLOPs
	if r.DecodeTokensPerSB1, err = decodeRate(m, 1, rng); err != nil {
		return nil, err
	}
	if r.DecodeTokensPerSB16, err = decodeRate(m, 16, rng); err != nil {
		return nil, err
	}
	return r, nil
}

// sgemmPeak is the best GFLOP/s of a tiled 2048³ product over at least three
// runs and a quarter of a second: the products' ceiling on this machine with
// this GOMAXPROCS.
func sgemmPeak() (float64, error) {
	const n = 2048
	k, err := kernel.CPU{}.New(kernel.GEMM{M: n, N: n, K: n})
	if err != nil {
		return 0, err
	}
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], b[i] = float32(i%7)-3, float32(i%5)-2
	}
	best := 0.0
	var total time.Duration
	for runs := 0; runs < 3 || total < 250*time.Millisecond; runs++ {
		start := time.Now()
		k.Forward([][]float32{a, b}, c)
		d := time.Since(start)
		total += d
		best = max(best, 2*n*n*n/d.Seconds()/1e9)
	}
	return best, nil
}

// decodeSteps bounds the timed steps of decodeRate (a Transformer++'s cache
// holds 16 + 8 + decodeSteps positions).
const decodeSteps = 512

// decodeRate is the tokens/s of generation at a batch size (timeDecode, at most decodeSteps).
func decodeRate(m layers.LM, batch int, rng *rand.Rand) (float64, error) {
	d, err := m.NewGenerator(batch, 16+8+decodeSteps)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	return timeDecode(d, m.Config().VocabSize, decodeSteps, rng)
}

// timeDecode is the tokens/s of g: after a 16-token prefill of random tokens and 8 warm-up
// steps, Step until at least 32 steps and a quarter of a second (at most maxSteps).
func timeDecode(g layers.Generator, vocab, maxSteps int, rng *rand.Rand) (float64, error) {
	batch := g.Batch()
	tok := make([]int32, batch*16)
	for i := range tok {
		tok[i] = int32(rng.IntN(vocab))
	}
	if _, err := g.Prefill(tok, 16); err != nil {
		return 0, err
	}
	tok = tok[:batch]
	for range 8 {
		if _, err := g.Step(tok); err != nil {
			return 0, err
		}
	}
	start, n := time.Now(), 0
	for ; n < maxSteps && (n < 32 || time.Since(start) < 250*time.Millisecond); n++ {
		if _, err := g.Step(tok); err != nil {
			return 0, err
		}
	}
	return float64(n*batch) / time.Since(start).Seconds(), nil
}

func (r *benchResult) tables(w io.Writer) {
	blas := r.BLAS
	if r.BLASCore != "" {
		blas += " (core " + r.BLASCore + ")"
	}
	if r.BLASWarning != "" {
		blas += "; " + r.BLASWarning
	}
	t := tablewriter.NewWriter(w)
	t.Header([]string{"bench", "value"})
	where := [][]string{{"threads (GOMAXPROCS)", strconv.Itoa(r.Threads)}, {"BLAS", blas}, {"vector path (scan, exp rows)", r.VectorPath}}
	peak := "sgemm peak (tiled 2048³)"
	if r.Device != "" {
		where = [][]string{{"device", r.Device}, {"precision of the products", r.Precision}, {"BLAS", blas},
			{"step replays a CUDA graph", r.Graph}, {"kernel calls per step", strconv.Itoa(r.KernelCalls)}}
		peak = "cuBLAS product peak (same precision)"
	}
	t.Bulk(append(append([][]string{
		{"model", r.modelString()},
		{"batch", fmt.Sprintf("%d × %d tokens", r.Batch, r.SeqLen)}}, where...), [][]string{
		{"training tokens/s", fmt.Sprintf("%.0f", r.TokensPerS)},
		{"step time", fmt.Sprintf("%.1f ms (mean of %d steps)", r.StepMS, r.Steps)},
		{"FLOPs per token", fmt.Sprintf("%.3g", r.FLOPsPerToken)},
		{"achieved", fmt.Sprintf("%.1f GFLOP/s", r.AchievedGFLOPs)},
		{peak, fmt.Sprintf("%.1f GFLOP/s", r.SgemmGFLOPs)},
		{"MFU", fmt.Sprintf("%.2f", r.MFU)},
		{"generation tokens/s, batch 1", fmt.Sprintf("%.0f", r.DecodeTokensPerSB1)},
		{"generation tokens/s, batch 16", fmt.Sprintf("%.0f", r.DecodeTokensPerSB16)},
	}...))
	t.Render()
	ops := tablewriter.NewWriter(w)
	ops.Header([]string{"op", "ms per step", "share", "calls per step"})
	var rows [][]string
	for _, o := range r.Ops {
		rows = append(rows, []string{o.Name, fmt.Sprintf("%.2f", o.MSPerStep), fmt.Sprintf("%.1f%%", 100*o.MSPerStep/r.StepMS), fmt.Sprintf("%.0f", o.Calls)})
	}
	ops.Bulk(rows)
	ops.Render()
}

// modelString describes the benched model in a line.
func (r *benchResult) modelString() string {
	s := fmt.Sprintf("Mamba d_model %d, %d layers", r.DModel, r.NLayer)
	if r.Arch == layers.ArchTransformer {
		s = fmt.Sprintf("Transformer++ d_model %d, %d layers, %d heads, d_ff %d", r.DModel, r.NLayer, r.NHead, r.DFF)
	}
	return fmt.Sprintf("%s, vocabulary %d: %s parameters", s, r.Vocab, commas(r.Params))
}

// availableMemory is MemAvailable of /proc/meminfo in bytes; ok is false
// where it cannot be read.
func availableMemory() (bytes uint64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "MemAvailable:" && fields[2] == "kB" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}

// bytesString writes a byte count in GB or MB.
func bytesString(b float64) string {
	if b >= 1e9 {
		return fmt.Sprintf("%.1f GB", b/1e9)
	}
	return fmt.Sprintf("%.1f MB", b/1e6)
}

// commas writes n with thousands separators.
func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
