package corpus

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/data/tokenize"
	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/regfile"
	"github.com/olekukonko/tablewriter"
)

// Doc is one document: the raw bytes its tokenizer encodes (text, DNA
// letters, or 16-bit little-endian PCM).
type Doc struct {
	Name string
	Data []byte
}

// Docs calls yield for each document of a split, in a fixed order, and
// stops at the first error.
type Docs func(yield func(Doc) error) error

// Split is one output shard: Name.tok in the output directory.
type Split struct {
	Name string
	Docs Docs
}

// Stats describes one written shard.
type Stats struct {
	Split, File  string
	Docs, Tokens int64
	Units        int64 // bytes, bases or samples
	Unit         string
	Bytes        int64 // file size
	SHA256       string
}

// Manifest is the checksum file written beside the shards, in the format
// of sha256sum, so "sha256sum -c MANIFEST.sha256" verifies a directory.
const Manifest = "MANIFEST.sha256"

// Build tokenizes every split into dir/<split>.tok and writes the manifest.
// A split with no documents is an error.
func Build(dir string, tok tokenize.Tokenizer, splits []Split) ([]Stats, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var all []Stats
	for _, sp := range splits {
		st, err := buildSplit(dir, tok, sp)
		if err != nil {
			return nil, err
		}
		all = append(all, st)
	}
	var m strings.Builder
	for _, st := range all {
		fmt.Fprintf(&m, "%s  %s\n", st.SHA256, st.File)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, Manifest), []byte(m.String())); err != nil {
		return nil, fmt.Errorf("writing %s: %v", Manifest, err)
	}
	return all, nil
}

func buildSplit(dir string, tok tokenize.Tokenizer, sp Split) (Stats, error) {
	file := sp.Name + ".tok"
	path := filepath.Join(dir, file)
	w, err := shard.Create(path, shard.Header{Modality: tok.Modality(), Vocab: tok.Vocab(), Tokenizer: tok.Name()})
	if err != nil {
		return Stats{}, err
	}
	var toks []int32
	docs := 0
	err = sp.Docs(func(d Doc) error {
		docs++
		var err error
		if toks, err = tok.Encode(toks[:0], d.Data); err != nil {
			return fmt.Errorf("%s: %v", d.Name, err)
		}
		if eos := tok.EOS(); eos >= 0 && len(toks) > 0 {
			toks = append(toks, eos)
		}
		return w.WriteDoc(toks, tok.Units(toks))
	})
	if err == nil && docs == 0 {
		err = errors.New("no documents (local inputs: add files, give this split its own inputs, or raise its held-out fraction)")
	}
	if err != nil {
		w.Abort()
		return Stats{}, fmt.Errorf("%s split: %v", sp.Name, err)
	}
	h, err := w.Close()
	if err != nil {
		return Stats{}, fmt.Errorf("%s split: %v", sp.Name, err)
	}
	sum, size, err := fileSHA256(path)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Split: sp.Name, File: file, Docs: h.Docs, Tokens: h.Tokens, Units: h.Units, Unit: tok.Unit(), Bytes: size, SHA256: sum}, nil
}

func fileSHA256(path string) (string, int64, error) {
	f, err := regfile.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Verify checks every shard listed in dir's manifest: its file hash, its
// header and its body checksum. It returns the stats of each shard.
func Verify(dir string) ([]Stats, error) {
	mf, err := regfile.ReadFile(filepath.Join(dir, Manifest))
	if err != nil {
		return nil, fmt.Errorf("verify: %v (run prepare first)", err)
	}
	var all []Stats
	sc := bufio.NewScanner(bytes.NewReader(mf))
	for sc.Scan() {
		want, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok || filepath.Base(file) != file {
			return nil, fmt.Errorf("verify: malformed %s line %q", Manifest, sc.Text())
		}
		path := filepath.Join(dir, file)
		got, size, err := fileSHA256(path)
		if err != nil {
			return nil, fmt.Errorf("verify: %v", err)
		}
		if got != want {
			return nil, fmt.Errorf("verify: %s has sha256 %s, manifest says %s", path, got, want)
		}
		sh, err := shard.Open(path, shard.Expect{})
		if err != nil {
			return nil, fmt.Errorf("verify: %v", err)
		}
		err = sh.Verify()
		h := sh.Header()
		sh.Close()
		if err != nil {
			return nil, fmt.Errorf("verify: %v", err)
		}
		tok, err := tokenize.New(h.Tokenizer)
		unit := "unit"
		if err == nil {
			unit = tok.Unit()
		}
		all = append(all, Stats{Split: strings.TrimSuffix(file, ".tok"), File: file, Docs: h.Docs, Tokens: h.Tokens, Units: h.Units, Unit: unit, Bytes: size, SHA256: got})
	}
	if len(all) == 0 {
		return nil, errors.New("verify: empty manifest")
	}
	return all, nil
}

// Table prints stats as a table with a total row.
func Table(w io.Writer, stats []Stats) error {
	t := tablewriter.NewWriter(w)
	t.Header("split", "file", "docs", "tokens", "units", "unit/token", "bytes", "sha256")
	var docs, tokens, bytes int64
	for _, s := range stats {
		if err := t.Append(s.Split, s.File, s.Docs, s.Tokens, fmt.Sprintf("%d %ss", s.Units, s.Unit),
			fmt.Sprintf("%.3f", float64(s.Units)/float64(s.Tokens)), s.Bytes, s.SHA256[:16]); err != nil {
			return err
		}
		docs, tokens, bytes = docs+s.Docs, tokens+s.Tokens, bytes+s.Bytes
	}
	t.Footer("total", fmt.Sprintf("%d files", len(stats)), docs, tokens, "", "", bytes, Manifest)
	return t.Render()
}

// sortedKeys returns m's keys in byte order (LC_ALL=C glob order).
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
