package shard

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary files to Open, Verify and Read. Nothing may
// panic; errors are one line; a shard that verifies reads back entirely,
// every token inside its vocabulary.
func FuzzOpen(f *testing.F) {
	for _, v := range []int{4, 300, 70000} {
		path, _ := writeShard(f, v, [][]int32{{0, 1, int32(v - 1)}, {2}, {3, 2, 1, 0}})
		good, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(good)
		f.Add(good[:len(good)-8])
		bad := append([]byte(nil), good...)
		bad[HeaderSize] = 0xff // token 255 (or more) under a rewritten checksum
		f.Add(resum(bad))
	}
	hdr := make([]byte, HeaderSize)
	copy(hdr, Magic)
	binary.LittleEndian.PutUint32(hdr[8:], Version)
	hdr[12], hdr[13] = 1, 1
	binary.LittleEndian.PutUint32(hdr[16:], 256)
	binary.LittleEndian.PutUint64(hdr[24:], 1<<56) // tokens far beyond the file
	binary.LittleEndian.PutUint64(hdr[32:], 1)
	f.Add(hdr)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.tok")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, Expect{})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		defer s.Close()
		docs := s.Docs()
		if len(docs) == 0 || docs[0] != 0 || docs[len(docs)-1] >= s.Len() {
			t.Fatalf("document index %v for %d tokens", docs, s.Len())
		}
		verr := s.Verify()
		all := make([]int32, s.Len())
		rerr := s.Read(all, 0)
		if verr == nil && rerr != nil {
			t.Fatalf("verified shard does not read back: %v", rerr)
		}
		if verr == nil {
			for i, tok := range all {
				if tok < 0 || int(tok) >= s.Header().Vocab {
					t.Fatalf("token %d at %d outside vocabulary %d", tok, i, s.Header().Vocab)
				}
			}
		}
	})
}
