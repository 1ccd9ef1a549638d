package corpus

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Inputs names a user's own files for each split. Directories are walked in
// lexical order and only files with one of the modality's extensions are
// taken from them; files named directly are always read.
type Inputs struct {
	Train, Valid, Test []string
	// ValidFrac and TestFrac hold documents of the Train inputs out for the
	// splits that have no inputs of their own: a document goes to test when
	// u < TestFrac and to valid when TestFrac ≤ u < TestFrac+ValidFrac,
	// where u ∈ [0, 1) is the first 8 bytes of the SHA-256 of its content.
	// Identical documents therefore always land in the same split. A split
	// with inputs of its own takes no share (its fraction counts as 0).
	ValidFrac, TestFrac float64
}

// reader turns one file into documents.
type reader func(path string, yield func(Doc) error) error

// local returns the three splits of in, read with read. When whole is set
// and the train inputs are one file, the held-out splits are taken from it
// by bytes instead (see wholeFile).
func local(in Inputs, exts []string, whole bool, read reader) ([]Split, error) {
	if len(in.Train) == 0 {
		return nil, fmt.Errorf("no --input given")
	}
	if in.ValidFrac < 0 || in.TestFrac < 0 || in.ValidFrac+in.TestFrac >= 1 {
		return nil, fmt.Errorf("held-out fractions valid %g and test %g must be ≥ 0 and sum below 1", in.ValidFrac, in.TestFrac)
	}
	for _, p := range [][]string{in.Train, in.Valid, in.Test} {
		for _, path := range p {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("input: %v", err)
			}
		}
	}
	// Held-out ranges of the train inputs' hash: test [0, tf), valid
	// [tf, tf+vf), train the rest; a split with inputs of its own takes none.
	tf, vf := in.TestFrac, in.ValidFrac
	if len(in.Test) > 0 {
		tf = 0
	}
	if len(in.Valid) > 0 {
		vf = 0
	}
	if whole {
		st, err := os.Stat(in.Train[0])
		whole = len(in.Train) == 1 && err == nil && st.Mode().IsRegular()
	}
	split := func(name string, own []string, lo, hi float64) Split {
		if len(own) > 0 {
			return Split{name, files(own, exts, read, nil)}
		}
		if whole { // hash range [lo, hi) ↔ byte range [1-hi, 1-lo): train first, test last
			return Split{name, wholeFile(in.Train[0], 1-hi, 1-lo)}
		}
		return Split{name, files(in.Train, exts, read, func(d Doc) bool {
			u := unitHash(d.Data)
			return lo <= u && u < hi
		})}
	}
	return []Split{split("train", nil, tf+vf, 1), split("valid", in.Valid, tf, tf+vf), split("test", in.Test, 0, tf)}, nil
}

// unitHash maps content to [0, 1).
func unitHash(b []byte) float64 {
	s := sha256.Sum256(b)
	return float64(binary.BigEndian.Uint64(s[:8])>>11) / math.Exp2(53)
}

// files yields the documents of paths that satisfy keep (nil: all).
func files(paths, exts []string, read reader, keep func(Doc) bool) Docs {
	return func(yield func(Doc) error) error {
		for _, p := range paths {
			err := filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if e.IsDir() || (path != p && !hasExt(path, exts)) {
					return nil
				}
				return read(path, func(d Doc) error {
					if keep == nil || keep(d) {
						return yield(d)
					}
					return nil
				})
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
}

func hasExt(path string, exts []string) bool {
	for _, e := range exts {
		if strings.HasSuffix(strings.ToLower(path), e) {
			return true
		}
	}
	return false
}

// readFile reads a file and refuses an empty one.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 0 {
		err = fmt.Errorf("%s: empty file", path)
	}
	return b, err
}

// LocalText returns splits of the user's .txt files (one document each)
// and .jsonl files (one document per line: the object's "text" field).
//
// A single text file as the only train input (nanoGPT's input.txt) is one
// long document that no hash could split: it is cut by bytes instead, train
// the first 1-ValidFrac-TestFrac of it, valid the next ValidFrac, test the
// last TestFrac (a split with inputs of its own takes none), each cut at a
// paragraph break and into documents of at most 1 MiB (see wholeFile).
func LocalText(in Inputs) ([]Split, error) {
	whole := len(in.Train) == 1 && !strings.HasSuffix(strings.ToLower(in.Train[0]), ".jsonl")
	return local(in, []string{".txt", ".jsonl"}, whole, readText)
}

// textBlock bounds the documents cut from a single-file corpus.
const textBlock = 1 << 20

// wholeFile yields the byte range [lo·n, hi·n) of the n-byte file path, both
// ends moved forward to a paragraph break (after a blank line; else after a
// line end; else where they fall), as documents of at most textBlock bytes that
// end at a paragraph break where there is one.
func wholeFile(path string, lo, hi float64) Docs {
	return func(yield func(Doc) error) error {
		b, err := readFile(path)
		if err != nil {
			return err
		}
		n := float64(len(b))
		start, end := breakAt(b, int(lo*n)), breakAt(b, int(hi*n))
		if hi >= 1 {
			end = len(b)
		}
		for start < end {
			stop := end
			if stop-start > textBlock {
				stop = start + textBlock
				if i := bytes.LastIndex(b[start+1:stop], []byte("\n\n")); i >= 0 {
					stop = start + 1 + i + 2
				} else if i := bytes.LastIndexByte(b[start+1:stop], '\n'); i >= 0 {
					stop = start + 1 + i + 1
				}
			}
			if err := yield(Doc{Name: fmt.Sprintf("%s@%d", path, start), Data: b[start:stop]}); err != nil {
				return err
			}
			start = stop
		}
		return nil
	}
}

// breakAt returns the first paragraph break at or after pos: the end of a
// blank line within the next textBlock bytes, else the end of a line there,
// else pos. It is non-decreasing in pos, so consecutive ranges tile the file.
func breakAt(b []byte, pos int) int {
	if pos <= 0 {
		return 0
	}
	if pos >= len(b) {
		return len(b)
	}
	window := b[pos-1 : min(len(b), pos+textBlock)]
	if i := bytes.Index(window, []byte("\n\n")); i >= 0 {
		return pos - 1 + i + 2
	}
	if i := bytes.IndexByte(window, '\n'); i >= 0 {
		return pos - 1 + i + 1
	}
	return pos
}

func readText(path string, yield func(Doc) error) error {
	b, err := readFile(path)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(strings.ToLower(path), ".jsonl") {
		return yield(Doc{Name: path, Data: b})
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec.Text == nil {
			return fmt.Errorf("%s:%d: want a JSON object with a string \"text\" field", path, n)
		}
		if err := yield(Doc{Name: fmt.Sprintf("%s:%d", path, n), Data: []byte(*rec.Text)}); err != nil {
			return err
		}
	}
	return nil
}
