package train

import (
	"fmt"
	"path/filepath"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/data/synth"
)

// Dataset is the data of a run.
type Dataset struct {
	Train, Valid data.Source
	// UnitsPerToken is the mean number of bytes (text), bases (DNA) or samples
	// (audio) a validation token stands for, as Unit names; 0 when unknown (then
	// bits per unit are not reported).
	UnitsPerToken float64
	Unit          string // "byte", "base" or "sample"
	// Accuracy asks evaluation for next-token accuracy on the target positions
	// (the answer positions of a synthetic task).
	Accuracy bool
	// Kind is the modality and tokenizer of shards (empty for synthetic tasks).
	Kind Kind
	// ValidPath and ValidTokens are the shards of Valid and their token count
	// (shards only).
	ValidPath   string
	ValidTokens int64
}

// Kind is what a model was trained on, or what data holds: a modality (text,
// dna, audio) and a tokenizer; empty fields are unknown (synthetic tasks,
// checkpoints that predate them).
type Kind struct{ Modality, Tokenizer string }

func (k Kind) String() string {
	switch {
	case k.Tokenizer == "":
		return k.Modality
	case k.Modality == "":
		return k.Tokenizer + " tokens"
	}
	return fmt.Sprintf("%s (%s tokens)", k.Modality, k.Tokenizer)
}

// accepts reports whether data of kind d may be used where k is expected.
func (k Kind) accepts(d Kind) bool {
	return (k.Modality == "" || k.Modality == d.Modality) && (k.Tokenizer == "" || k.Tokenizer == d.Tokenizer)
}

// shardKind is the Kind of a shard header.
func shardKind(h shard.Header) Kind { return Kind{h.Modality.String(), h.Tokenizer} }

// declared is the Kind a data section asks for, and who asks for it.
func declared(d DataConfig) (Kind, string) {
	k := Kind{d.Modality, d.Tokenizer}
	switch {
	case k.Modality != "" && k.Tokenizer != "":
		return k, "data.modality and data.tokenizer ask for"
	case k.Modality != "":
		return k, "data.modality asks for"
	}
	return k, "data.tokenizer asks for"
}

// checkKind refuses shards of d (data.train and data.valid, or the splits
// named by keys) that are not of kind want, which who expects (e.g.
// "data.modality asks for", "checkpoint runs/x/checkpoints/step-10 was
// trained on"). Only the shard headers are read.
func checkKind(want Kind, who string, d DataConfig, keys ...string) error {
	if d.Task != TaskShards || want == (Kind{}) {
		return nil
	}
	paths := map[string]string{"data.train": d.Train, "data.valid": d.Valid, "data.test": d.Test}
	if len(keys) == 0 {
		keys = []string{"data.train", "data.valid"}
	}
	for _, key := range keys {
		h, err := data.ReadHeader(paths[key])
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if got := shardKind(h); !want.accepts(got) {
			return fmt.Errorf("%s %s holds %s, but %s %s: point %s at %s shards", key, paths[key], got, who, want, key, want)
		}
	}
	return nil
}

// Close closes the sources.
func (d *Dataset) Close() {
	if d.Train != nil {
		d.Train.Close()
	}
	d.Valid.Close()
}

// units names what a shard's units are, by modality.
var units = map[shard.Modality]string{shard.Text: "byte", shard.DNA: "base", shard.Audio: "sample"}

// OpenData opens the streams that cfg.Data names: a synthetic task generated from
// run.seed (validation from a different seed), or prepared token shards (training
// windows in seeded random order, validation in one sequential pass).
func OpenData(cfg Config) (*Dataset, error) {
	d := cfg.Data
	vocab := cfg.Model.VocabSize
	if d.Task == TaskShards {
		train, err := data.Open(d.Train, data.LoaderOptions{Batch: d.BatchSize, Len: d.SeqLen, Seed: cfg.Run.Seed, Order: data.Random, Prefetch: 2, Verify: d.Verify, Resets: d.ResetAtDocBoundary})
		if err != nil {
			return nil, err
		}
		th := train.Header()
		if th.Vocab > vocab {
			train.Close()
			return nil, fmt.Errorf("data.train %s has vocabulary %d, larger than model.vocab_size %d", d.Train, th.Vocab, vocab)
		}
		ds, err := openSplit(cfg, "data.valid", d.Valid)
		if err != nil {
			train.Close()
			return nil, err
		}
		ds.Train = train
		if vh := ds.Valid.(*data.Loader).Header(); vh.Vocab != th.Vocab || vh.Tokenizer != th.Tokenizer {
			ds.Close()
			return nil, fmt.Errorf("data.valid %s (tokenizer %s, vocabulary %d) does not match data.train (tokenizer %s, vocabulary %d)", d.Valid, vh.Tokenizer, vh.Vocab, th.Tokenizer, th.Vocab)
		}
		return ds, nil
	}
	var task synth.Task = synth.SelectiveCopying{Vocab: d.Vocab, Len: d.SeqLen, Data: d.Tokens}
	if d.Task == TaskInductionHeads {
		task = synth.InductionHeads{Vocab: d.Vocab, Len: d.SeqLen}
	}
	train, err := synth.New(task, synth.Options{Batch: d.BatchSize, Seed: cfg.Run.Seed, Prefetch: 1})
	if err != nil {
		return nil, err
	}
	valid, err := synth.New(task, synth.Options{Batch: d.BatchSize, Seed: cfg.Run.Seed ^ 0x9e3779b97f4a7c15})
	if err != nil {
		train.Close()
		return nil, err
	}
	return &Dataset{Train: train, Valid: valid, Accuracy: true}, nil
}

// openSplit opens the shards at path (named key in the config) as a validation
// stream, in one sequential pass: a Dataset without a training stream.
func openSplit(cfg Config, key, path string) (*Dataset, error) {
	d := cfg.Data
	l, err := data.Open(path, data.LoaderOptions{Batch: d.BatchSize, Len: d.SeqLen, Order: data.Sequential, Passes: 1, Verify: d.Verify, Resets: d.ResetAtDocBoundary})
	if err != nil {
		return nil, err
	}
	h := l.Header()
	if h.Vocab > cfg.Model.VocabSize {
		l.Close()
		return nil, fmt.Errorf("%s %s has vocabulary %d, larger than model.vocab_size %d", key, path, h.Vocab, cfg.Model.VocabSize)
	}
	ds := &Dataset{Valid: l, Kind: shardKind(h), ValidPath: path, ValidTokens: h.Tokens}
	if u, ok := units[h.Modality]; ok && h.Tokens > 0 && h.Units > 0 {
		ds.UnitsPerToken, ds.Unit = float64(h.Units)/float64(h.Tokens), u
	}
	return ds, nil
}

// The splits an evaluation reads.
const (
	SplitValid = "valid"
	SplitTest  = "test"
)

// splitPath returns the config key and the shards of split: data.valid, or
// data.test (by default test.tok beside a data.valid named valid.tok, as
// `train prepare` writes them).
func splitPath(d DataConfig, split string) (key, path string, err error) {
	switch {
	case split == SplitValid:
		return "data.valid", d.Valid, nil
	case split != SplitTest:
		return "", "", fmt.Errorf("unknown split %q (want %s or %s)", split, SplitValid, SplitTest)
	case d.Task != TaskShards:
		return "", "", fmt.Errorf("data.task %s has no test split (synthetic tasks are generated; evaluate the valid split)", d.Task)
	case d.Test != "":
		return "data.test", d.Test, nil
	case filepath.Base(d.Valid) == "valid.tok":
		return "data.test", filepath.Join(filepath.Dir(d.Valid), "test.tok"), nil
	}
	return "", "", fmt.Errorf("no test split: data.valid %s is not a valid.tok of `train prepare`; name the test shards with --set data.test=PATH", d.Valid)
}

// OpenEval opens the data that evaluates a model of cfg on split (SplitValid
// or SplitTest): the split's shards alone, or a synthetic task's validation
// stream. The shards must be of the kind the config declares and of trained,
// the kind the model was trained on (TrainedOn; who names the checkpoint).
func OpenEval(cfg Config, split string, trained Kind, who string) (*Dataset, error) {
	key, path, err := splitPath(cfg.Data, split)
	if err != nil {
		return nil, err
	}
	if cfg.Data.Task != TaskShards {
		return OpenData(cfg)
	}
	d := cfg.Data
	d.Test = path
	k, asks := declared(d)
	if err := checkKind(k, asks, d, key); err != nil {
		return nil, err
	}
	if err := checkKind(trained, who+" was trained on", d, key); err != nil {
		return nil, err
	}
	return openSplit(cfg, key, path)
}
