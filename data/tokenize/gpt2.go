package tokenize

import (
	"fmt"
	"sync"

	"github.com/mambago/mamba/data/shard"
	"github.com/tiktoken-go/tokenizer"
)

// GPT2EOS is GPT-2's <|endoftext|> token.
const GPT2EOS = 50256

const gpt2Vocab = 50257

// gpt2Pieces[t] is the byte string of token t (built once, shared).
var gpt2Pieces = sync.OnceValues(func() ([]string, error) {
	c, err := tokenizer.Get(tokenizer.R50kBase)
	if err != nil {
		return nil, err
	}
	p := make([]string, gpt2Vocab)
	for t := range GPT2EOS {
		if p[t], err = c.Decode([]uint{uint(t)}); err != nil {
			return nil, err
		}
	}
	p[GPT2EOS] = "<|endoftext|>"
	return p, nil
})

// GPT2 is the GPT-2 byte-level BPE (tiktoken's r50k_base, vocabulary
// embedded in the binary). Encode does not parse special-token text: the
// string "<|endoftext|>" in the input is encoded as ordinary text.
type GPT2 struct {
	c      tokenizer.Codec
	pieces []string
}

// NewGPT2 loads the embedded GPT-2 vocabulary.
func NewGPT2() (*GPT2, error) {
	c, err := tokenizer.Get(tokenizer.R50kBase)
	if err != nil {
		return nil, fmt.Errorf("tokenize: gpt2: %v", err)
	}
	c.SetErrorMode(tokenizer.ErrorModeReplace)
	p, err := gpt2Pieces()
	if err != nil {
		return nil, fmt.Errorf("tokenize: gpt2: %v", err)
	}
	return &GPT2{c: c, pieces: p}, nil
}

func (*GPT2) Name() string             { return "gpt2" }
func (*GPT2) Modality() shard.Modality { return shard.Text }
func (*GPT2) Vocab() int               { return gpt2Vocab }
func (*GPT2) Unit() string             { return "byte" }
func (*GPT2) EOS() int32               { return GPT2EOS }

// Units sums the byte lengths of the tokens; <|endoftext|> and invalid
// tokens count 0.
func (g *GPT2) Units(tokens []int32) int64 {
	var n int64
	for _, t := range tokens {
		if t >= 0 && t < GPT2EOS {
			n += int64(len(g.pieces[t]))
		}
	}
	return n
}

func (g *GPT2) Encode(dst []int32, src []byte) ([]int32, error) {
	ids, _, err := g.c.Encode(string(src))
	if err != nil {
		return dst, fmt.Errorf("tokenize: gpt2: %v", err)
	}
	for _, id := range ids {
		dst = append(dst, int32(id))
	}
	return dst, nil
}

func (g *GPT2) Decode(dst []byte, tokens []int32) ([]byte, error) {
	for i, t := range tokens {
		if t < 0 || t >= gpt2Vocab {
			return dst, badToken("gpt2", t, i, gpt2Vocab)
		}
		dst = append(dst, g.pieces[t]...)
	}
	return dst, nil
}
