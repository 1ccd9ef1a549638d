package data

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mambago/mamba/data/shard"
)

// shards is one or more shards of a split read as one token sequence: shard
// i holds tokens [starts[i], starts[i+1]) of the whole, so a window may span
// two files and the cursor of a Loader is global.
type shards struct {
	list   []*shard.Shard
	starts []int64      // len(list)+1 prefix sums of the shard lengths
	docs   []int64      // document starts in whole-sequence indices
	h      shard.Header // one shard: its own; several: counts summed, checksum over theirs
}

// splitNames are the files one `train prepare` run writes side by side: a
// directory holding two of them is a prepared corpus, not one split.
var splitNames = []string{"train.tok", "valid.tok", "test.tok", "test_real.tok"}

// shardPaths resolves path: a shard file, or a directory whose *.tok files
// (in name order; hidden files skipped) are the shards of one split.
func shardPaths(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return []string{path}, nil // shard.Open says what is wrong with it
	}
	es, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	var paths, splits []string
	for _, e := range es {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".tok") {
			continue
		}
		paths = append(paths, filepath.Join(path, n))
		if slices.Contains(splitNames, n) {
			splits = append(splits, n)
		}
	}
	switch {
	case len(paths) == 0:
		return nil, fmt.Errorf("data: directory %s holds no *.tok shards (make them with `train prepare`, or name a shard file)", path)
	case len(splits) > 1:
		return nil, fmt.Errorf("data: directory %s holds the splits %s of one `train prepare` run, not the shards of one split: name one file, e.g. %s", path, strings.Join(splits, ", "), filepath.Join(path, splits[0]))
	}
	return paths, nil // os.ReadDir sorts by name
}

// ReadHeader returns the header of the data at path (a shard file, or a
// directory of the shards of one split, as Open takes it) without reading
// the tokens: cheap, to check what the data is before opening it.
func ReadHeader(path string) (shard.Header, error) {
	s, err := openShards(path, shard.Expect{}, false)
	if err != nil {
		return shard.Header{}, err
	}
	defer s.Close()
	return s.h, nil
}

// openShards opens the shards of path, checks each against want (and the
// others), and verifies each when verify is set.
func openShards(path string, want shard.Expect, verify bool) (*shards, error) {
	paths, err := shardPaths(path)
	if err != nil {
		return nil, err
	}
	s := &shards{starts: []int64{0}}
	fail := func(err error) (*shards, error) {
		s.Close()
		return nil, err
	}
	sums := sha256.New()
	for _, p := range paths {
		sh, err := shard.Open(p, want)
		if err != nil {
			return fail(err)
		}
		s.list = append(s.list, sh)
		h := sh.Header()
		if len(s.list) == 1 {
			s.h = h
		} else {
			first := s.list[0]
			if h.Modality != s.h.Modality || h.Vocab != s.h.Vocab || h.Tokenizer != s.h.Tokenizer {
				return fail(fmt.Errorf("data: shard %s (%s, tokenizer %q, vocabulary %d) does not match %s (%s, tokenizer %q, vocabulary %d)",
					p, h.Modality, h.Tokenizer, h.Vocab, first.Path(), s.h.Modality, s.h.Tokenizer, s.h.Vocab))
			}
			s.h.Tokens += h.Tokens
			s.h.Docs += h.Docs
			s.h.Units += h.Units
		}
		if verify {
			if err := sh.Verify(); err != nil {
				return fail(err)
			}
		}
		sums.Write(h.Checksum[:])
		s.starts = append(s.starts, s.starts[len(s.starts)-1]+h.Tokens)
	}
	if len(s.list) == 1 {
		s.docs = s.list[0].Docs()
		return s, nil
	}
	s.h.Checksum = [32]byte(sums.Sum(nil))
	s.docs = make([]int64, 0, s.h.Docs)
	for i, sh := range s.list {
		for _, d := range sh.Docs() {
			s.docs = append(s.docs, s.starts[i]+d)
		}
	}
	return s, nil
}

// Len is the number of tokens of all shards.
func (s *shards) Len() int64 { return s.starts[len(s.list)] }

// Read copies tokens [start, start+len(dst)) of the whole into dst.
func (s *shards) Read(dst []int32, start int64) error {
	i, found := slices.BinarySearch(s.starts, start)
	if !found {
		i--
	}
	for len(dst) > 0 && i < len(s.list) {
		n := min(int64(len(dst)), s.starts[i+1]-start)
		if err := s.list[i].Read(dst[:n], start-s.starts[i]); err != nil {
			return err
		}
		dst, start, i = dst[n:], start+n, i+1
	}
	if len(dst) > 0 {
		return fmt.Errorf("data: read past the end of %d tokens", s.Len())
	}
	return nil
}

// Close closes every shard.
func (s *shards) Close() error {
	var first error
	for _, sh := range s.list {
		if err := sh.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
