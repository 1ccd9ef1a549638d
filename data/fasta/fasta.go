// Package fasta reads FASTA files record by record, plain or gzip-compressed.
//
// A record is a '>' header line (its text after '>' is the name) followed by
// sequence lines, which are concatenated with all whitespace removed and
// upper-cased. Lines starting with ';' are comments. The reader refuses
// sequence text before the first header, a file with no header, and a file
// whose records hold no sequence at all.
package fasta

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// Record is one FASTA record.
type Record struct {
	Name string // header text after '>'
	Seq  []byte // upper-case letters, no whitespace
}

// Reader reads records from a FASTA stream.
type Reader struct {
	src     io.Reader
	br      *bufio.Reader
	name    string // stream name for errors
	header  []byte // pending header of the next record
	line    int
	records int
	bases   int64
	err     error
}

// NewReader reads FASTA from r, decompressing it if it starts with the
// gzip magic. name labels errors (usually the file path).
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{src: r, name: name}
}

// init detects gzip on first use.
func (r *Reader) init() error {
	br := bufio.NewReaderSize(r.src, 1<<20)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("fasta %s: bad gzip stream: %v", r.name, err)
		}
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	r.br = br
	return nil
}

// readLine returns the next line without its line ending; io.EOF at the end.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, err
	}
	r.line++
	return bytes.TrimRight(line, "\r\n"), nil
}

// Next returns the next record, or io.EOF after the last one.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	if r.br == nil {
		if err := r.init(); err != nil {
			return Record{}, err
		}
	}
	for r.header == nil {
		line, err := r.readLine()
		switch {
		case err == io.EOF:
			return Record{}, r.end()
		case err != nil:
			return Record{}, fmt.Errorf("fasta %s: %v", r.name, err)
		case len(line) > 0 && line[0] == '>':
			r.header = append([]byte(nil), line[1:]...)
		case len(bytes.TrimSpace(line)) > 0 && line[0] != ';':
			return Record{}, fmt.Errorf("fasta %s:%d: sequence before the first '>' header (not a FASTA file?)", r.name, r.line)
		}
	}
	rec := Record{Name: string(bytes.TrimSpace(r.header))}
	r.header = nil
	for {
		line, err := r.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Record{}, fmt.Errorf("fasta %s: %v", r.name, err)
		}
		if len(line) > 0 && line[0] == '>' {
			r.header = append([]byte(nil), line[1:]...)
			break
		}
		if len(line) > 0 && line[0] == ';' {
			continue
		}
		for _, c := range line {
			switch {
			case c == ' ' || c == '\t' || c == '\r':
			case 'a' <= c && c <= 'z':
				rec.Seq = append(rec.Seq, c-'a'+'A')
			default:
				rec.Seq = append(rec.Seq, c)
			}
		}
	}
	r.records++
	r.bases += int64(len(rec.Seq))
	return rec, nil
}

// end reports io.EOF, or why a finished file is not usable FASTA.
func (r *Reader) end() error {
	switch {
	case r.records == 0:
		return fmt.Errorf("fasta %s: no records (no '>' header line; empty or not FASTA)", r.name)
	case r.bases == 0:
		return fmt.Errorf("fasta %s: %d records but no sequence (headers only)", r.name, r.records)
	}
	return io.EOF
}
