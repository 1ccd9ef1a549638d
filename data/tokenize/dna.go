package tokenize

import (
	"fmt"
	"slices"

	"github.com/mambago/mamba/data/shard"
)

// DNA tokens.
const (
	BaseA int32 = iota
	BaseC
	BaseG
	BaseT
	BaseN
	DNAPad
	DNAEOS
	DNASep
	dnaVocab
)

// dnaCode maps a byte to its base token, -2 for skipped whitespace, -1 for invalid.
var dnaCode = func() (c [256]int8) {
	for i := range c {
		c[i] = -1
	}
	for _, b := range " \t\r\n" {
		c[b] = -2
	}
	for i, s := range []string{"Aa", "Cc", "Gg", "Tt", "NnRrYyKkMmSsWwBbDdHhVv"} {
		for _, b := range s {
			c[b] = int8(i)
		}
	}
	return c
}()

// DNA is the character tokenizer for nucleotides.
type DNA struct{}

func (DNA) Name() string             { return "dna" }
func (DNA) Modality() shard.Modality { return shard.DNA }
func (DNA) Vocab() int               { return int(dnaVocab) }
func (DNA) Unit() string             { return "base" }
func (DNA) EOS() int32               { return DNAEOS }

// Units counts the base tokens (A C G T N).
func (DNA) Units(tokens []int32) int64 {
	var n int64
	for _, t := range tokens {
		if t >= BaseA && t <= BaseN {
			n++
		}
	}
	return n
}

// Encode appends one token per base; whitespace is skipped.
func (DNA) Encode(dst []int32, src []byte) ([]int32, error) {
	dst = slices.Grow(dst, len(src))
	for i, b := range src {
		switch c := dnaCode[b]; c {
		case -1:
			return dst, fmt.Errorf("tokenize: invalid DNA base %q at offset %d", b, i)
		case -2:
		default:
			dst = append(dst, int32(c))
		}
	}
	return dst, nil
}

// Decode writes the upper-case bases; eos and sep become newlines, pad nothing.
func (DNA) Decode(dst []byte, tokens []int32) ([]byte, error) {
	for i, t := range tokens {
		switch {
		case t >= BaseA && t <= BaseN:
			dst = append(dst, "ACGTN"[t])
		case t == DNAEOS || t == DNASep:
			dst = append(dst, '\n')
		case t == DNAPad:
		default:
			return dst, badToken("dna", t, i, int(dnaVocab))
		}
	}
	return dst, nil
}
