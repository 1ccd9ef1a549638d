package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mambago/mamba/autograd"
	"github.com/mambago/mamba/data/tokenize"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/train"
)

const evalUsage = `Evaluate a model on the validation data of its config.

Usage:
  train eval --checkpoint DIR [--set key=value]...
  train eval --checkpoint HF_DIR --config FILE [--set key=value]...

DIR is a checkpoint or a run directory (its newest valid checkpoint), whose stored
config names the data; a transformers model directory needs --config for the data.

Flags:
`

// loadModel resolves dir (run, checkpoint or transformers directory) and returns the
// model with the config to evaluate it under.
func loadModel(dir, config string, sets []string) (layers.LM, train.Config, error) {
	d, err := train.ModelDir(dir)
	if err != nil {
		return nil, train.Config{}, usageError{err}
	}
	var cfg train.Config
	if _, statErr := os.Stat(filepath.Join(d, "trainer_state.json")); statErr == nil && config == "" {
		cfg, err = train.CheckpointConfig(d, sets)
	} else if config != "" {
		cfg, err = train.LoadConfig(config, sets)
	} else {
		cfg = train.DefaultConfig()
	}
	if err != nil {
		return nil, cfg, usageError{err}
	}
	autograd.UseBLAS()
	m, err := layers.LoadLM(d)
	if err != nil {
		return nil, cfg, usageError{err}
	}
	cfg.Model = m.Config()
	return m, cfg, nil
}

func runEval(args []string, stdout io.Writer) error {
	fs := newFlags("eval", evalUsage, stdout)
	ckpt := fs.String("checkpoint", "", "checkpoint, run or transformers model directory (required)")
	config := fs.String("config", "", "config whose data section to evaluate on (default: the checkpoint's)")
	sets := fs.StringArray("set", nil, "override a config key, e.g. --set data.eval_batches=50 (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ckpt == "" {
		return usagef("--checkpoint DIR is required")
	}
	m, cfg, err := loadModel(*ckpt, *config, *sets)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	ds, err := train.OpenData(cfg)
	if err != nil {
		return usageError{err}
	}
	defer ds.Close()
	e, err := train.Evaluate(cfg, train.Layers{}.Wrap(m), ds)
	if err != nil {
		return err
	}
	e.Table(stdout)
	return nil
}

const generateUsage = `Continue a prompt with a trained model.

Usage:
  train generate --checkpoint DIR --prompt TEXT --tokenizer bytes|gpt2|dna|mulaw [--tokens N]
  train generate --checkpoint DIR --prompt-ids 2,7,1 [--tokens N]

Temperature 0 is greedy decoding; otherwise the distribution is cut by --top-k and
--top-p and sampled with --seed.

Flags:
`

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", generateUsage, stdout)
	ckpt := fs.String("checkpoint", "", "checkpoint, run or transformers model directory (required)")
	prompt := fs.String("prompt", "", "prompt text, tokenized with --tokenizer")
	tok := fs.String("tokenizer", "", "tokenizer of --prompt and of the output: "+strings.Join(tokenize.Names, ", "))
	ids := fs.String("prompt-ids", "", "prompt as comma-separated token ids")
	n := fs.Int("tokens", 64, "tokens to generate")
	var s layers.Sampling
	fs.Float64Var(&s.Temperature, "temperature", 1, "sampling temperature; 0 = greedy")
	fs.IntVar(&s.TopK, "top-k", 0, "sample among the k most likely tokens (0 = all)")
	fs.Float64Var(&s.TopP, "top-p", 0, "sample among the most likely tokens of total probability p (0 = all)")
	fs.Uint64Var(&s.Seed, "seed", 1, "sampling seed")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ckpt == "" {
		return usagef("--checkpoint DIR is required")
	}
	if (*prompt == "") == (*ids == "") {
		return usagef("give exactly one of --prompt (with --tokenizer) and --prompt-ids")
	}
	var tk tokenize.Tokenizer
	if *tok != "" {
		var err error
		if tk, err = tokenize.New(*tok); err != nil {
			return usageError{err}
		}
	}
	var in []int32
	if *prompt != "" {
		if tk == nil {
			return usagef("--prompt needs --tokenizer")
		}
		var err error
		if in, err = tk.Encode(nil, []byte(*prompt)); err != nil {
			return usageError{err}
		}
	} else {
		for f := range strings.SplitSeq(*ids, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil {
				return usagef("--prompt-ids: %q is not a token id", f)
			}
			in = append(in, int32(v))
		}
	}
	start := time.Now()
	m, _, err := loadModel(*ckpt, "", nil)
	if err != nil {
		return err
	}
	loaded := time.Since(start)
	start = time.Now()
	out, err := m.Generate(in, 1, *n, s)
	if err != nil {
		return usageError{err}
	}
	gen := time.Since(start)
	fmt.Fprintf(stderr, "loaded in %.2f s; %d-token prompt and %d new tokens in %.2f s (%.0f new tokens/s)\n",
		loaded.Seconds(), len(in), len(out), gen.Seconds(), float64(len(out))/max(gen.Seconds(), 1e-9))
	if tk != nil {
		text, err := tk.Decode([]byte(*prompt), out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", text)
		return nil
	}
	strs := make([]string, len(out))
	for i, t := range out {
		strs[i] = strconv.Itoa(int(t))
	}
	fmt.Fprintln(stdout, strings.Join(strs, ","))
	return nil
}
