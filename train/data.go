package train

import (
	"fmt"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/data/synth"
)

// Dataset is the data of a run.
type Dataset struct {
	Train, Valid data.Source
	// BytesPerToken is the mean number of text bytes a validation token stands for;
	// 0 when unknown or not text (then bits per byte is not reported).
	BytesPerToken float64
	// Accuracy asks evaluation for next-token accuracy on the target positions
	// (the answer positions of a synthetic task).
	Accuracy bool
}

// Close closes both sources.
func (d *Dataset) Close() {
	d.Train.Close()
	d.Valid.Close()
}

// OpenData opens the streams that cfg.Data names: a synthetic task generated from
// run.seed (validation from a different seed), or prepared token shards (training
// windows in seeded random order, validation in one sequential pass).
func OpenData(cfg Config) (*Dataset, error) {
	d := cfg.Data
	vocab := cfg.Model.VocabSize
	if d.Task == TaskShards {
		train, err := data.Open(d.Train, data.LoaderOptions{Batch: d.BatchSize, Len: d.SeqLen, Seed: cfg.Run.Seed, Order: data.Random, Prefetch: 2, Verify: d.Verify})
		if err != nil {
			return nil, err
		}
		valid, err := data.Open(d.Valid, data.LoaderOptions{Batch: d.BatchSize, Len: d.SeqLen, Order: data.Sequential, Passes: 1, Verify: d.Verify})
		if err != nil {
			train.Close()
			return nil, err
		}
		ds := &Dataset{Train: train, Valid: valid}
		th, vh := train.Header(), valid.Header()
		switch {
		case th.Vocab > vocab:
			ds.Close()
			return nil, fmt.Errorf("data.train %s has vocabulary %d, larger than model.vocab_size %d", d.Train, th.Vocab, vocab)
		case vh.Vocab != th.Vocab || vh.Tokenizer != th.Tokenizer:
			ds.Close()
			return nil, fmt.Errorf("data.valid %s (tokenizer %s, vocabulary %d) does not match data.train (tokenizer %s, vocabulary %d)", d.Valid, vh.Tokenizer, vh.Vocab, th.Tokenizer, th.Vocab)
		}
		if vh.Modality == shard.Text && vh.Tokens > 0 {
			ds.BytesPerToken = float64(vh.Units) / float64(vh.Tokens)
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
