package shard

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// Magic opens every shard file.
const Magic = "MAMBATOK"

// Version is the format version this package reads and writes.
const Version = 1

// HeaderSize is the fixed header length in bytes.
const HeaderSize = 128

const nameSize = 16

// Modality says what the tokens encode.
type Modality uint8

// Modalities stored in shards.
const (
	Text  Modality = 1
	DNA   Modality = 2
	Audio Modality = 3
)

func (m Modality) String() string {
	switch m {
	case Text:
		return "text"
	case DNA:
		return "dna"
	case Audio:
		return "audio"
	}
	return fmt.Sprintf("modality(%d)", uint8(m))
}

// ParseModality maps "text", "dna" or "audio" to its Modality.
func ParseModality(s string) (Modality, error) {
	for _, m := range []Modality{Text, DNA, Audio} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown modality %q (want text, dna or audio)", s)
}

// Header describes a shard. Modality, Vocab and Tokenizer are chosen by the
// writer; the other fields are filled in when the shard is written or opened.
type Header struct {
	Modality  Modality
	Vocab     int    // vocabulary size; every token is in [0, Vocab)
	Tokenizer string // at most 16 ASCII bytes
	Width     int    // bytes per token: 1, 2 or 4
	Tokens    int64  // token count
	Docs      int64  // document count
	Units     int64  // bytes, bases or samples the tokens stand for
	Checksum  [32]byte
}

// WidthFor returns the token width in bytes for a vocabulary of size v.
func WidthFor(v int) int {
	switch {
	case v <= 1<<8:
		return 1
	case v <= 1<<16:
		return 2
	}
	return 4
}

// Expect lists what a reader requires of a shard; zero fields accept anything.
type Expect struct {
	Modality Modality
	Vocab    int
	Width    int
}

// recreate is the hint every refusal ends with.
func recreate(m Modality) string {
	ms := "<text|dna|audio>"
	if m >= Text && m <= Audio {
		ms = m.String()
	}
	return fmt.Sprintf(`recreate it with "train prepare --modality %s --out DIR"`, ms)
}

func (h *Header) validate() error {
	if h.Modality < Text || h.Modality > Audio {
		return fmt.Errorf("modality %d is not text, dna or audio", h.Modality)
	}
	if h.Vocab < 1 || int64(h.Vocab) > 1<<31 {
		return fmt.Errorf("vocabulary size %d is outside [1, 2^31] (tokens are int32)", h.Vocab)
	}
	if len(h.Tokenizer) > nameSize || strings.IndexByte(h.Tokenizer, 0) >= 0 {
		return fmt.Errorf("tokenizer name %q longer than %d bytes or holds NUL", h.Tokenizer, nameSize)
	}
	return nil
}

func (h *Header) bodySize() int64 {
	return pad8(h.Tokens*int64(h.Width)) + 8*h.Docs
}

func pad8(n int64) int64 { return (n + 7) &^ 7 }

func (h *Header) marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, Magic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], Version)
	b[12] = byte(h.Width)
	b[13] = byte(h.Modality)
	le.PutUint32(b[16:], uint32(h.Vocab))
	le.PutUint64(b[24:], uint64(h.Tokens))
	le.PutUint64(b[32:], uint64(h.Docs))
	le.PutUint64(b[40:], uint64(h.Units))
	copy(b[48:48+nameSize], h.Tokenizer)
	copy(b[64:96], h.Checksum[:])
	return b
}

// unmarshal decodes and checks the header at the start of b (at least
// HeaderSize bytes), read from a file of size bytes.
func unmarshal(b []byte, size int64, want Expect) (Header, error) {
	var h Header
	if string(b[:8]) != Magic {
		return h, fmt.Errorf("bad magic %q, want %q (not a token shard); %s", b[:8], Magic, recreate(want.Modality))
	}
	le := binary.LittleEndian
	h.Modality = Modality(b[13])
	if v := le.Uint32(b[8:]); v != Version {
		return h, fmt.Errorf("format version %d, this build reads version %d; %s", v, Version, recreate(h.Modality))
	}
	h.Width = int(b[12])
	h.Vocab = int(le.Uint32(b[16:]))
	h.Tokens = int64(le.Uint64(b[24:]))
	h.Docs = int64(le.Uint64(b[32:]))
	h.Units = int64(le.Uint64(b[40:]))
	h.Tokenizer = string(bytes.TrimRight(b[48:48+nameSize], "\x00"))
	copy(h.Checksum[:], b[64:96])
	if err := h.validate(); err != nil {
		return h, fmt.Errorf("corrupt header: %v; %s", err, recreate(h.Modality))
	}
	if h.Width != WidthFor(h.Vocab) {
		return h, fmt.Errorf("token width %d bytes does not fit vocabulary %d (want %d); %s", h.Width, h.Vocab, WidthFor(h.Vocab), recreate(h.Modality))
	}
	if h.Tokens <= 0 || h.Docs <= 0 || h.Tokens > 1<<56 || h.Docs > h.Tokens {
		return h, fmt.Errorf("corrupt header: %d tokens in %d documents; %s", h.Tokens, h.Docs, recreate(h.Modality))
	}
	if h.Units < 0 {
		return h, fmt.Errorf("corrupt header: %d units; %s", h.Units, recreate(h.Modality))
	}
	if n := HeaderSize + h.bodySize(); size != n {
		return h, fmt.Errorf("file is %d bytes, header says %d (truncated or overwritten); %s", size, n, recreate(h.Modality))
	}
	switch {
	case want.Modality != 0 && h.Modality != want.Modality:
		return h, fmt.Errorf("modality %s, want %s; %s", h.Modality, want.Modality, recreate(want.Modality))
	case want.Vocab != 0 && h.Vocab != want.Vocab:
		return h, fmt.Errorf("vocabulary %d (tokenizer %q), want %d; %s", h.Vocab, h.Tokenizer, want.Vocab, recreate(h.Modality))
	case want.Width != 0 && h.Width != want.Width:
		return h, fmt.Errorf("token width %d bytes, want %d; %s", h.Width, want.Width, recreate(h.Modality))
	}
	return h, nil
}
