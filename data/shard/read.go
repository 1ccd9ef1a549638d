package shard

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mambago/mamba/internal/regfile"
)

// Shard is an open, memory-mapped token shard. Its methods may be called
// from several goroutines at once, until Close.
type Shard struct {
	path   string
	h      Header
	data   []byte  // the whole mapped file
	tokens []byte  // data[HeaderSize:], T·width bytes
	docs   []int64 // document start indices
}

// Open maps the shard at path and checks it against its own header and want.
// It does not read the body: Verify does.
//
// Only a regular file is opened: a named pipe would block open() until a
// writer appears, and a device or socket cannot be mapped.
func Open(path string, want Expect) (*Shard, error) {
	f, err := regfile.Open(path)
	if err != nil {
		var nr *regfile.NotRegularError
		if errors.As(err, &nr) {
			return nil, fmt.Errorf("shard %s: %s, not a regular file; %s", path, regfile.Kind(nr.Mode), recreate(want.Modality))
		}
		return nil, fmt.Errorf("shard: %v; %s", err, recreate(want.Modality))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shard %s: %v", path, err)
	}
	size := st.Size()
	if size < HeaderSize {
		return nil, fmt.Errorf("shard %s: file is %d bytes, shorter than the %d-byte header (empty or truncated); %s", path, size, HeaderSize, recreate(want.Modality))
	}
	data, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("shard %s: mmap: %v", path, err)
	}
	h, err := unmarshal(data, size, want)
	if err != nil {
		unmapFile(data)
		return nil, fmt.Errorf("shard %s: %v", path, err)
	}
	s := &Shard{path: path, h: h, data: data}
	n := h.Tokens * int64(h.Width)
	s.tokens = data[HeaderSize : HeaderSize+n]
	idx := data[HeaderSize+pad8(n):]
	s.docs = make([]int64, h.Docs)
	for i := range s.docs {
		s.docs[i] = int64(binary.LittleEndian.Uint64(idx[8*i:]))
		if (i == 0 && s.docs[i] != 0) || (i > 0 && s.docs[i] <= s.docs[i-1]) || s.docs[i] >= h.Tokens {
			unmapFile(data)
			return nil, fmt.Errorf("shard %s: corrupt document index at entry %d; %s", path, i, recreate(h.Modality))
		}
	}
	return s, nil
}

// Path returns the file the shard was opened from.
func (s *Shard) Path() string { return s.path }

// Header returns the shard's header.
func (s *Shard) Header() Header { return s.h }

// Len returns the number of tokens.
func (s *Shard) Len() int64 { return s.h.Tokens }

// Docs returns the start index of every document, ascending, the first 0.
// The slice belongs to the shard: do not modify it.
func (s *Shard) Docs() []int64 { return s.docs }

// Read copies tokens [start, start+len(dst)) into dst. A token outside the
// vocabulary (a body that Verify would refuse) is an error.
func (s *Shard) Read(dst []int32, start int64) error {
	if s.data == nil {
		return fmt.Errorf("shard %s: read after Close", s.path)
	}
	if start < 0 || start > s.h.Tokens-int64(len(dst)) {
		return fmt.Errorf("shard %s: read [%d, %d) outside [0, %d)", s.path, start, start+int64(len(dst)), s.h.Tokens)
	}
	s.read(dst, start)
	if s.narrowVocab() {
		for i, t := range dst {
			if t < 0 || int64(t) >= int64(s.h.Vocab) {
				return s.outside(start+int64(i), int64(uint32(t)))
			}
		}
	}
	return nil
}

// narrowVocab reports whether a token of the shard's width can lie outside
// its vocabulary (not so for 256 tokens of one byte, say).
func (s *Shard) narrowVocab() bool { return int64(s.h.Vocab) < 1<<(8*s.h.Width) }

func (s *Shard) outside(at, token int64) error {
	return fmt.Errorf("shard %s: token %d at index %d is outside the vocabulary [0, %d) of its header (file corrupted); %s", s.path, token, at, s.h.Vocab, recreate(s.h.Modality))
}

// read is Read without the checks.
func (s *Shard) read(dst []int32, start int64) {
	switch s.h.Width {
	case 1:
		src := s.tokens[start : start+int64(len(dst))]
		for i, b := range src {
			dst[i] = int32(b)
		}
	case 2:
		src := s.tokens[2*start : 2*(start+int64(len(dst)))]
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	default:
		src := s.tokens[4*start : 4*(start+int64(len(dst)))]
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
		}
	}
}

// Verify reads the body once: it recomputes the checksum, compares it with
// the header, and checks that every token is inside the vocabulary (a file
// whose checksum matches may still have been written wrong).
func (s *Shard) Verify() error {
	if s.data == nil {
		return fmt.Errorf("shard %s: verify after Close", s.path)
	}
	h := sha256.New()
	var bad error
	const chunk = 1 << 18 // tokens per pass: the hash and the scan share the cache
	buf := make([]int32, chunk)
	w := int64(s.h.Width)
	scan := s.narrowVocab()
	for start := int64(0); start < s.h.Tokens; start += chunk {
		n := min(chunk, s.h.Tokens-start)
		h.Write(s.tokens[start*w : (start+n)*w])
		if bad != nil || !scan {
			continue
		}
		s.read(buf[:n], start)
		for i, t := range buf[:n] {
			if t < 0 || int64(t) >= int64(s.h.Vocab) {
				bad = s.outside(start+int64(i), int64(uint32(t)))
				break
			}
		}
	}
	h.Write(s.data[HeaderSize+int64(len(s.tokens)):])
	if [32]byte(h.Sum(nil)) != s.h.Checksum {
		return fmt.Errorf("shard %s: checksum mismatch (file corrupted); %s", s.path, recreate(s.h.Modality))
	}
	return bad
}

// Close unmaps the file. The shard must not be used afterwards.
func (s *Shard) Close() error {
	if s.data == nil {
		return nil
	}
	err := unmapFile(s.data)
	s.data, s.tokens = nil, nil
	return err
}
