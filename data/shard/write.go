package shard

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"

	"github.com/mambago/mamba/internal/atomicfile"
)

// Writer streams documents into a new shard. Nothing is visible at the
// final path until Close succeeds.
type Writer struct {
	h    Header
	path string
	f    *atomicfile.File
	buf  *bufio.Writer
	sum  hash.Hash
	body io.Writer // buf and sum together
	docs []int64
	tmp  []byte
	err  error
}

// Create starts a shard at path. h needs Modality, Vocab and Tokenizer; the
// width follows from the vocabulary.
func Create(path string, h Header) (*Writer, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("shard %s: %v", path, err)
	}
	h.Width = WidthFor(h.Vocab)
	h.Tokens, h.Docs, h.Units, h.Checksum = 0, 0, 0, [32]byte{}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %v", path, err)
	}
	if _, err := f.Write(make([]byte, HeaderSize)); err != nil {
		f.Abort()
		return nil, fmt.Errorf("shard %s: %v", path, err)
	}
	w := &Writer{h: h, path: path, f: f, buf: bufio.NewWriterSize(f, 1<<20), sum: sha256.New()}
	w.body = io.MultiWriter(w.buf, w.sum)
	return w, nil
}

// WriteDoc appends one document: its tokens and the number of units (bytes,
// bases, samples) they stand for. An empty document is skipped.
func (w *Writer) WriteDoc(tokens []int32, units int64) error {
	if w.err != nil {
		return w.err
	}
	if len(tokens) == 0 {
		return nil
	}
	if units < 0 {
		w.err = fmt.Errorf("shard %s: negative unit count %d", w.path, units)
		return w.err
	}
	const chunk = 1 << 16
	if cap(w.tmp) < chunk*w.h.Width {
		w.tmp = make([]byte, chunk*w.h.Width)
	}
	for i := 0; i < len(tokens); i += chunk {
		part := tokens[i:min(i+chunk, len(tokens))]
		b := w.tmp[:len(part)*w.h.Width]
		for j, t := range part {
			if t < 0 || int64(t) >= int64(w.h.Vocab) {
				w.err = fmt.Errorf("shard %s: token %d at document %d offset %d is outside vocabulary [0, %d)", w.path, t, len(w.docs), i+j, w.h.Vocab)
				return w.err
			}
			switch w.h.Width {
			case 1:
				b[j] = byte(t)
			case 2:
				binary.LittleEndian.PutUint16(b[2*j:], uint16(t))
			default:
				binary.LittleEndian.PutUint32(b[4*j:], uint32(t))
			}
		}
		if _, err := w.body.Write(b); err != nil {
			w.err = fmt.Errorf("shard %s: %v", w.path, err)
			return w.err
		}
	}
	w.docs = append(w.docs, w.h.Tokens)
	w.h.Tokens += int64(len(tokens))
	w.h.Units += units
	return nil
}

// Close writes the document index and header, syncs and renames the file
// into place, and returns the final header. After an error nothing is left
// at the path.
func (w *Writer) Close() (Header, error) {
	if w.err == nil && w.h.Tokens == 0 {
		w.err = fmt.Errorf("shard %s: no tokens written (empty input)", w.path)
	}
	if w.err != nil {
		w.f.Abort()
		return w.h, w.err
	}
	w.h.Docs = int64(len(w.docs))
	pad := pad8(w.h.Tokens*int64(w.h.Width)) - w.h.Tokens*int64(w.h.Width)
	tail := make([]byte, pad+8*w.h.Docs)
	for i, d := range w.docs {
		binary.LittleEndian.PutUint64(tail[pad+8*int64(i):], uint64(d))
	}
	_, err := w.body.Write(tail)
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		copy(w.h.Checksum[:], w.sum.Sum(nil))
		_, err = w.f.WriteAt(w.h.marshal(), 0)
	}
	if err != nil {
		w.f.Abort()
		return w.h, fmt.Errorf("shard %s: %v", w.path, err)
	}
	if err := w.f.Commit(); err != nil {
		return w.h, fmt.Errorf("shard %s: %v", w.path, err)
	}
	return w.h, nil
}

// Abort discards the shard being written.
func (w *Writer) Abort() {
	if w.err == nil {
		w.err = fmt.Errorf("shard %s: writer aborted", w.path)
	}
	w.f.Abort()
}
