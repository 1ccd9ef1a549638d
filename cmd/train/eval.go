package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/data/tokenize"
	"github.com/mambago/mamba/data/wav"
	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/gpu"
	"github.com/mambago/mamba/internal/regfile"
	"github.com/mambago/mamba/internal/sysmem"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/train"
)

const evalUsage = `Evaluate a model on the validation (or test) data of its config.

Usage:
  train eval --checkpoint DIR [--split valid|test] [--set key=value]...
  train eval --checkpoint HF_DIR --config FILE [--split valid|test] [--set key=value]...

DIR is a checkpoint or a run directory (its newest valid checkpoint), whose stored
config names the data; a transformers model directory needs --config for the data.
The report names the checkpoint and its step, the split, its shards and the tokens
scored, then the loss, perplexity and bits per token, and per byte of text, base of
DNA or sample of audio. --split test reads data.test (by default test.tok beside
data.valid, as train prepare writes it). Shards of another modality or tokenizer
than the checkpoint was trained on are refused.

Flags:
`

// model is a resolved model directory: the directory, its config (the run
// config stored in a checkpoint of ours, or --config) and what it was
// trained on.
type model struct {
	dir   string
	cfg   train.Config
	kind  train.Kind // empty for a transformers directory
	limit int64      // --max-memory in bytes, 0 = the available memory
}

// resolveModel resolves dir (run, checkpoint or transformers directory) and the
// config to use it under, without loading the weights. maxMemory is --max-memory.
func resolveModel(dir, config string, sets []string, maxMemory string) (model, error) {
	d, err := train.ModelDir(dir)
	if err != nil {
		return model{}, usageError{err}
	}
	m := model{dir: d}
	if maxMemory != "" {
		if m.limit, err = sysmem.ParseSize(maxMemory); err != nil {
			return m, usagef("--max-memory: %v", err)
		}
	}
	if _, statErr := os.Stat(filepath.Join(d, "trainer_state.json")); statErr == nil && config == "" {
		m.cfg, err = train.CheckpointConfig(d, sets)
	} else if config != "" {
		m.cfg, err = train.LoadConfig(config, sets)
	} else {
		m.cfg = train.DefaultConfig()
	}
	if err != nil {
		return m, usageError{err}
	}
	if m.kind, err = train.TrainedOn(d); err != nil {
		return m, usageError{err}
	}
	if m.cfg.Model, err = layers.ReadConfig(d); err != nil {
		return m, usageError{err}
	}
	return m, nil
}

// checkMemory refuses need bytes (of what) over --max-memory or the memory available.
func (m model) checkMemory(what string, need float64) error {
	if err := sysmem.Check(need, m.limit); err != nil {
		return usagef("%s %v: ask for less, or set --max-memory", what, err)
	}
	return nil
}

// load reads the weights.
func (m model) load() (layers.LM, error) {
	autograd.UseBLAS()
	lm, err := layers.LoadLM(m.dir)
	if err != nil {
		return nil, usageError{err}
	}
	return lm, nil
}

func runEval(args []string, stdout io.Writer) error {
	fs := newFlags("eval", evalUsage, stdout)
	ckpt := fs.String("checkpoint", "", "checkpoint, run or transformers model directory (required)")
	config := fs.String("config", "", "config whose data section to evaluate on (default: the checkpoint's)")
	sets := fs.StringArray("set", nil, "override a config key, e.g. --set data.eval_batches=50 (repeatable)")
	split := fs.String("split", train.SplitValid, "data split to evaluate: valid (data.valid) or test (data.test)")
	maxMem := fs.String("max-memory", "", "refuse to evaluate when the estimated memory exceeds this, e.g. 16GB (default: the memory available)")
	device, precision := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *ckpt == "":
		return usagef("--checkpoint DIR is required")
	case *split != train.SplitValid && *split != train.SplitTest:
		return usagef("--split must be %s or %s, got %q", train.SplitValid, train.SplitTest, *split)
	}
	m, err := resolveModel(*ckpt, *config, *sets, *maxMem)
	if err != nil {
		return err
	}
	cfg := m.cfg
	if fs.Changed("device") {
		cfg.Run.Device = *device
	}
	if fs.Changed("precision") {
		cfg.Run.Precision = *precision
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if err := m.checkMemory("evaluating the model at "+strconv.Itoa(cfg.Data.BatchSize)+" × "+strconv.Itoa(cfg.Data.SeqLen)+" tokens",
		cfg.Model.TrainingBytes(cfg.Data.BatchSize, cfg.Data.SeqLen)); err != nil {
		return err
	}
	ds, err := train.OpenEval(cfg, *split, m.kind, "checkpoint "+m.dir)
	if err != nil {
		return usageError{err}
	}
	defer ds.Close()
	lm, err := m.load()
	if err != nil {
		return err
	}
	e, err := train.Evaluate(cfg, train.Layers{}.Wrap(lm), ds)
	if err != nil {
		return gpuError(err)
	}
	head := [][]string{{"checkpoint", m.dir}}
	if step, ok, _ := train.CheckpointStep(m.dir); ok {
		head = append(head, []string{"step", strconv.Itoa(step)})
	}
	head = append(head, []string{"split", *split})
	if ds.ValidPath != "" {
		head = append(head, []string{"data", ds.ValidPath}, []string{"tokens scored", fmt.Sprintf("%d of %d", e.Tokens, ds.ValidTokens)})
	} else {
		head = append(head, []string{"data", cfg.Data.Task + " (generated)"}, []string{"tokens scored", strconv.FormatInt(e.Tokens, 10)})
	}
	e.Table(stdout, head...)
	return nil
}

const generateUsage = `Continue a prompt with a trained model.

Usage:
  train generate --checkpoint DIR --prompt TEXT [--tokenizer NAME] [--tokens N]
  train generate --checkpoint DIR --prompt-ids 2,7,1 [--tokens N]
  train generate --checkpoint DIR --prompt-wav IN.wav [--wav OUT.wav] [--tokens N]

A checkpoint of ours records its tokenizer, so --tokenizer may be left out (given,
it must agree); a transformers directory needs it for --prompt. Text is printed,
prompt and continuation; an audio (mulaw) model's new samples are written as a
16 kHz WAV with --wav (printed as token ids otherwise), and --prompt-wav primes it
with a recording (any rate, mixed to mono and resampled to 16 kHz). Temperature 0
is greedy decoding; otherwise the distribution is cut by --top-k and --top-p and
sampled with --seed. The memory the generation needs is estimated first: more than
is available (or --max-memory) is refused.

Flags:
`

// count is a flag of a non-negative count that also takes exact decimal
// exponents (1e6).
type count int64

func (c *count) String() string { return strconv.FormatInt(int64(*c), 10) }
func (c *count) Type() string   { return "count" }
func (c *count) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		*c = count(n)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f < math.MaxInt64) || f != math.Trunc(f) {
		return fmt.Errorf("want a count of tokens ≥ 0, e.g. 200 or 1e6")
	}
	*c = count(f)
	return nil
}

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", generateUsage, stdout)
	ckpt := fs.String("checkpoint", "", "checkpoint, run or transformers model directory (required)")
	prompt := fs.String("prompt", "", "prompt text, tokenized with the model's tokenizer")
	tok := fs.String("tokenizer", "", "tokenizer of --prompt and of the output: "+strings.Join(tokenize.Names, ", ")+" (default: the checkpoint's)")
	ids := fs.String("prompt-ids", "", "prompt as comma-separated token ids")
	promptWav := fs.String("prompt-wav", "", "audio model: prompt with the samples of this WAV file")
	outWav := fs.String("wav", "", "audio model: write the new samples to this 16 kHz WAV file")
	n := count(64)
	fs.Var(&n, "tokens", "tokens to generate")
	maxMem := fs.String("max-memory", "", "refuse to generate when the estimated memory exceeds this, e.g. 16GB (default: the memory available)")
	var s layers.Sampling
	fs.Float64Var(&s.Temperature, "temperature", 1, "sampling temperature, ≥ 0; 0 = greedy")
	fs.IntVar(&s.TopK, "top-k", 0, "sample among the k most likely tokens (0 = all)")
	fs.Float64Var(&s.TopP, "top-p", 1, "sample among the most likely tokens of total probability p, in (0, 1] (1 = all)")
	fs.Uint64Var(&s.Seed, "seed", 1, "sampling seed")
	device := fs.String("device", train.DeviceCPU, "where to generate: cpu, or cuda (the first NVIDIA GPU, a Mamba; float32 products)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *device != train.DeviceCPU && *device != train.DeviceCUDA {
		return usagef("--device %q: want cpu or cuda", *device)
	}
	given := 0
	for _, p := range []string{*prompt, *ids, *promptWav} {
		if p != "" {
			given++
		}
	}
	switch {
	case *ckpt == "":
		return usagef("--checkpoint DIR is required")
	case given != 1:
		return usagef("give exactly one of --prompt, --prompt-ids and --prompt-wav")
	case !(s.TopP > 0 && s.TopP <= 1):
		return usagef("--top-p must be in (0, 1] (1 = no cut), got %g", s.TopP)
	}
	if err := s.Validate(); err != nil {
		return usageError{err}
	}
	m, err := resolveModel(*ckpt, "", nil, *maxMem)
	if err != nil {
		return err
	}
	tk, err := generationTokenizer(m, *tok, *prompt != "", *promptWav != "" || *outWav != "")
	if err != nil {
		return err
	}
	var in []int32
	switch {
	case *prompt != "":
		if in, err = tk.Encode(nil, []byte(*prompt)); err != nil {
			return usageError{err}
		}
	case *promptWav != "":
		if in, err = readWavPrompt(*promptWav); err != nil {
			return err
		}
	default:
		for f := range strings.SplitSeq(*ids, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil {
				return usagef("--prompt-ids: %q is not a token id", f)
			}
			in = append(in, int32(v))
		}
	}
	if *outWav != "" && len(in)+int(n) > maxWavSamples {
		return usagef("--wav: %d samples do not fit a WAV file (at most %d)", int(n), maxWavSamples-len(in))
	}
	if err := m.checkMemory(fmt.Sprintf("generating %d tokens after a %d-token prompt", n, len(in)), m.cfg.Model.GenerationBytes(1, len(in), int(n))); err != nil {
		return err
	}
	start := time.Now()
	lm, err := m.load()
	if err != nil {
		return err
	}
	loaded := time.Since(start)
	start = time.Now()
	out, err := generate(lm, in, int(n), s, *device)
	if err != nil {
		return err
	}
	gen := time.Since(start)
	fmt.Fprintf(stderr, "loaded in %.2f s; %d-token prompt and %d new tokens in %.2f s (%.0f new tokens/s)\n",
		loaded.Seconds(), len(in), len(out), gen.Seconds(), float64(len(out))/max(gen.Seconds(), 1e-9))
	switch {
	case *outWav != "":
		return writeWav(*outWav, out, stderr)
	case tk != nil && tk.Name() != "mulaw":
		text, err := tk.Decode([]byte(*prompt), out)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", text)
		return err
	}
	w := bufio.NewWriter(stdout)
	for i, t := range out {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(strconv.Itoa(int(t)))
	}
	w.WriteByte('\n')
	return w.Flush()
}

// generationTokenizer resolves the tokenizer of a generation: --tokenizer
// (name), which must agree with the checkpoint's, or the checkpoint's; nil
// when neither says and none is needed (text: a --prompt; audio: a WAV).
func generationTokenizer(m model, name string, text, audio bool) (tokenize.Tokenizer, error) {
	trained := m.kind.Tokenizer
	switch {
	case name != "" && trained != "" && name != trained:
		return nil, usagef("--tokenizer %s, but checkpoint %s was trained on %s tokens: leave --tokenizer out", name, m.dir, trained)
	case name == "":
		name = trained
	}
	switch {
	case name == "" && text:
		return nil, usagef("--prompt needs --tokenizer: %s does not record one (%s)", m.dir, strings.Join(tokenize.Names, ", "))
	case name == "" && audio:
		name = "mulaw" // a transformers directory: the WAV options say what it is
	case name == "":
		return nil, nil
	}
	tk, err := tokenize.New(name)
	if err != nil {
		return nil, usageError{err}
	}
	switch {
	case audio && tk.Name() != "mulaw":
		return nil, usagef("--prompt-wav and --wav need an audio (mulaw) model; %s uses %s tokens", m.dir, tk.Name())
	case text && tk.Name() == "mulaw":
		return nil, usagef("an audio model takes --prompt-wav (or --prompt-ids), not --prompt text")
	case tk.Vocab() > m.cfg.Model.VocabSize:
		return nil, usagef("tokenizer %s has %d tokens, more than the model's vocabulary of %d", tk.Name(), tk.Vocab(), m.cfg.Model.VocabSize)
	}
	return tk, nil
}

// maxWavSamples is the most 16-bit samples a WAV's 32-bit sizes describe.
const maxWavSamples = (math.MaxUint32 - 36) / 2

// readWavPrompt reads a recording as μ-law tokens at the audio shards' rate.
func readWavPrompt(path string) ([]int32, error) {
	raw, err := regfile.ReadFile(path)
	if err != nil {
		return nil, usagef("--prompt-wav: %v", err)
	}
	a, err := wav.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, usagef("--prompt-wav %s: %v", path, err)
	}
	samples, err := wav.Resample(a.Samples, a.Rate, tokenize.SampleRate)
	if err != nil {
		return nil, usagef("--prompt-wav %s: %v", path, err)
	}
	if len(samples) == 0 {
		return nil, usagef("--prompt-wav %s holds no samples", path)
	}
	return tokenize.MuLaw{}.EncodeSamples(nil, samples), nil
}

// writeWav writes the μ-law tokens out as a 16 kHz WAV file, atomically.
func writeWav(path string, out []int32, stderr io.Writer) error {
	pcm, err := tokenize.MuLaw{}.Decode(nil, out)
	if err != nil {
		return err
	}
	samples := make([]int16, len(out))
	for i := range samples {
		samples[i] = int16(uint16(pcm[2*i]) | uint16(pcm[2*i+1])<<8)
	}
	var b bytes.Buffer
	if err := wav.Write(&b, tokenize.SampleRate, samples); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b.Bytes()); err != nil {
		return usagef("--wav: %v", err)
	}
	fmt.Fprintf(stderr, "wrote %d samples (%.2f s at %d Hz) to %s\n", len(samples), float64(len(samples))/tokenize.SampleRate, tokenize.SampleRate, path)
	return nil
}

// generate continues the prompt in by n tokens on device (one sequence).
func generate(m layers.LM, in []int32, n int, s layers.Sampling, device string) ([]int32, error) {
	if device == train.DeviceCPU {
		out, err := m.Generate(in, 1, n, s)
		if err != nil {
			return nil, usageError{err}
		}
		return out, nil
	}
	mm, ok := m.(*layers.Model)
	if !ok {
		return nil, usagef("--device cuda: the %s model does not run on the GPU yet (the Mamba does)", m.Config().Arch)
	}
	d, err := openGPU()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	dec, err := gpu.NewDecoder(d, mm, 1)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out, err := layers.GenerateWith(mm.Config(), dec, in, 1, n, s)
	if err != nil {
		return nil, usageError{err}
	}
	return out, nil
}
