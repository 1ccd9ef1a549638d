package tokenize

import (
	"fmt"
	"slices"

	"github.com/mambago/mamba/data/shard"
)

// Tokenizer maps a modality's raw bytes to tokens and back.
type Tokenizer interface {
	Name() string
	Modality() shard.Modality
	// Vocab is the vocabulary size; tokens are in [0, Vocab).
	Vocab() int
	// Encode appends the tokens of src to dst: text bytes (bytes, gpt2),
	// DNA letters (dna) or 16-bit little-endian PCM (mulaw).
	Encode(dst []int32, src []byte) ([]int32, error)
	// Decode appends the bytes that tokens stand for to dst.
	Decode(dst []byte, tokens []int32) ([]byte, error)
	// Unit names what a unit is: "byte", "base" or "sample".
	Unit() string
	// Units returns how many units the tokens stand for.
	Units(tokens []int32) int64
	// EOS is the end-of-document token, or -1 when there is none.
	EOS() int32
}

// Names lists the tokenizers New knows.
var Names = []string{"bytes", "gpt2", "dna", "mulaw"}

// New returns the tokenizer called name.
func New(name string) (Tokenizer, error) {
	switch name {
	case "bytes":
		return Bytes{}, nil
	case "gpt2":
		return NewGPT2()
	case "dna":
		return DNA{}, nil
	case "mulaw":
		return MuLaw{}, nil
	}
	return nil, fmt.Errorf("tokenize: unknown tokenizer %q (want bytes, gpt2, dna or mulaw)", name)
}

// ModalityOf returns the modality of the tokenizer called name without
// building it (GPT-2's tables are large).
func ModalityOf(name string) (shard.Modality, error) {
	switch name {
	case "bytes", "gpt2":
		return shard.Text, nil
	case "dna":
		return shard.DNA, nil
	case "mulaw":
		return shard.Audio, nil
	}
	return 0, fmt.Errorf("tokenize: unknown tokenizer %q (want bytes, gpt2, dna or mulaw)", name)
}

func badToken(name string, t int32, i, vocab int) error {
	return fmt.Errorf("tokenize: %s token %d at position %d is outside [0, %d)", name, t, i, vocab)
}

// Bytes is the identity tokenizer over 256 byte values.
type Bytes struct{}

func (Bytes) Name() string             { return "bytes" }
func (Bytes) Modality() shard.Modality { return shard.Text }
func (Bytes) Vocab() int               { return 256 }
func (Bytes) Unit() string             { return "byte" }
func (Bytes) EOS() int32               { return -1 }

// Units is len(tokens): one byte per token.
func (Bytes) Units(tokens []int32) int64 { return int64(len(tokens)) }

func (Bytes) Encode(dst []int32, src []byte) ([]int32, error) {
	dst = slices.Grow(dst, len(src))
	for _, c := range src {
		dst = append(dst, int32(c))
	}
	return dst, nil
}

func (Bytes) Decode(dst []byte, tokens []int32) ([]byte, error) {
	for i, t := range tokens {
		if t < 0 || t > 255 {
			return dst, badToken("bytes", t, i, 256)
		}
		dst = append(dst, byte(t))
	}
	return dst, nil
}
