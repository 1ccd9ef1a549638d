package shard

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeShard writes docs with vocabulary v and returns the path and header.
func writeShard(t testing.TB, v int, docs [][]int32) (string, Header) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "train.tok")
	w, err := Create(path, Header{Modality: Text, Vocab: v, Tokenizer: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := w.WriteDoc(d, int64(2*len(d))); err != nil {
			t.Fatal(err)
		}
	}
	h, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return path, h
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []int{5, 256, 257, 50257, 1 << 16, 1<<16 + 1, 1 << 20} {
		docs := [][]int32{{0, 1, int32(v - 1)}, {}, {int32(v / 2)}, {3 % int32(v), 4 % int32(v), 2, 1, 0}}
		path, h := writeShard(t, v, docs)
		s, err := Open(path, Expect{Modality: Text, Vocab: v, Width: WidthFor(v)})
		if err != nil {
			t.Fatalf("vocab %d: %v", v, err)
		}
		got := s.Header()
		if got != h || got.Tokens != 9 || got.Docs != 3 || got.Units != 18 || got.Tokenizer != "test" {
			t.Errorf("vocab %d: header %+v, writer said %+v", v, got, h)
		}
		all := make([]int32, s.Len())
		if err := s.Read(all, 0); err != nil {
			t.Fatal(err)
		}
		want := append(append(append([]int32{}, docs[0]...), docs[2]...), docs[3]...)
		for i := range want {
			if all[i] != want[i] {
				t.Fatalf("vocab %d: token %d = %d, want %d", v, i, all[i], want[i])
			}
		}
		if d := s.Docs(); len(d) != 3 || d[0] != 0 || d[1] != 3 || d[2] != 4 {
			t.Errorf("vocab %d: docs %v, want [0 3 4]", v, d)
		}
		if err := s.Verify(); err != nil {
			t.Error(err)
		}
		if err := s.Read(all[:2], 8); err == nil {
			t.Error("Read past the end succeeded")
		}
		s.Close()
		st, _ := os.Stat(path)
		if want := HeaderSize + pad8(9*int64(WidthFor(v))) + 8*3; st.Size() != want {
			t.Errorf("file size %d, want %d", st.Size(), want)
		}
	}
}

func TestWriterRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "a.tok"), Header{Modality: 9, Vocab: 4}); err == nil {
		t.Error("unknown modality accepted")
	}
	w, err := Create(filepath.Join(dir, "b.tok"), Header{Modality: DNA, Vocab: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteDoc([]int32{1, 4}, 2); err == nil || !strings.Contains(err.Error(), "outside vocabulary") {
		t.Errorf("token 4 in vocabulary 4: err = %v", err)
	}
	if _, err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
	w, _ = Create(filepath.Join(dir, "c.tok"), Header{Modality: DNA, Vocab: 4})
	if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), "empty input") {
		t.Errorf("empty shard: err = %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("failed writes left files behind: %v", left)
	}
}

func TestOpenRefuses(t *testing.T) {
	path, _ := writeShard(t, 300, [][]int32{{1, 2, 3, 299}})
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mutate := func(name string, f func([]byte) []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, f(append([]byte(nil), good...)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		want       Expect
		msg        string
	}{
		{"missing", filepath.Join(dir, "nope.tok"), Expect{}, "no such file"},
		{"empty", mutate("empty.tok", func([]byte) []byte { return nil }), Expect{}, "empty or truncated"},
		{"short header", mutate("short.tok", func(b []byte) []byte { return b[:100] }), Expect{}, "shorter than the 128-byte header"},
		{"truncated", mutate("trunc.tok", func(b []byte) []byte { return b[:len(b)-3] }), Expect{}, "truncated"},
		{"magic", mutate("magic.tok", func(b []byte) []byte { copy(b, "GGUF0000"); return b }), Expect{}, "bad magic"},
		{"version", mutate("version.tok", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 7); return b }), Expect{}, "format version 7"},
		{"width", mutate("width.tok", func(b []byte) []byte { b[12] = 4; return b }), Expect{}, "token width 4"},
		{"index", mutate("index.tok", func(b []byte) []byte { b[len(b)-8] = 9; return b }), Expect{}, "corrupt document index"},
		{"units", mutate("units.tok", func(b []byte) []byte { b[47] = 0x80; return b }), Expect{}, "corrupt header: -"},
		{"want vocab", path, Expect{Vocab: 256}, "vocabulary 300"},
		{"want modality", path, Expect{Modality: Audio}, "modality text, want audio"},
		{"want width", path, Expect{Width: 1}, "token width 2 bytes, want 1"},
	}
	for _, c := range cases {
		s, err := Open(c.path, c.want)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.msg) || !strings.Contains(msg, "train prepare") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q: want one line containing %q and the recreate command", c.name, msg, c.msg)
		}
	}
	// A flipped token passes Open (sizes agree) but not Verify.
	s, err := Open(mutate("flip.tok", func(b []byte) []byte { b[HeaderSize] ^= 1; return b }), Expect{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Verify(); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("Verify of a corrupted body: %v", err)
	}
}

// resum rewrites the header checksum of a shard file image to match its body.
func resum(b []byte) []byte {
	sum := sha256.Sum256(b[HeaderSize:])
	copy(b[64:96], sum[:])
	return b
}

// Bad bodies are found by Verify, a checksum mismatch first; a token outside
// the vocabulary under a matching checksum too, and Read refuses it when
// Verify was skipped.
func TestVerifyFindsBadBodies(t *testing.T) {
	path, _ := writeShard(t, 300, [][]int32{{1, 2, 3, 299}, {7, 8}})
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"flipped token", func(b []byte) []byte { b[HeaderSize+1] ^= 0x40; return b }, "checksum mismatch"},
		{"flipped index", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return resum(b)[:len(b)] }, ""},
		{"token >= vocab, checksum rewritten", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[HeaderSize+2*3:], 300)
			return resum(b)
		}, "token 300 at index 3 is outside the vocabulary [0, 300)"},
		{"token 65535, checksum rewritten", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[HeaderSize+2*5:], 65535)
			return resum(b)
		}, "token 65535 at index 5"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(p, tc.edit(append([]byte(nil), good...)), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, Expect{})
		if tc.want == "" { // a corrupt document index is refused by Open itself
			if err == nil || !strings.Contains(err.Error(), "corrupt document index") {
				t.Errorf("%s: Open = %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Open: %v", tc.name, err)
		}
		if err := s.Verify(); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "train prepare") {
			t.Errorf("%s: Verify = %v, want one containing %q", tc.name, err, tc.want)
		}
		if strings.Contains(tc.want, "outside") {
			if err := s.Read(make([]int32, 6), 0); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
				t.Errorf("%s: Read = %v, want a refusal", tc.name, err)
			}
		}
		s.Close()
	}
}

// Open refuses what is not a regular file before opening it, so a named
// pipe cannot block it.
func TestOpenRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{dir: "a directory"}
	if _, err := os.Stat(os.DevNull); err == nil && os.DevNull == "/dev/null" {
		cases[os.DevNull] = "a device"
	}
	for path, kind := range cases {
		_, err := Open(path, Expect{Modality: Text})
		if err == nil || !strings.Contains(err.Error(), kind+", not a regular file") || !strings.Contains(err.Error(), "train prepare --modality text") {
			t.Errorf("Open(%s) = %v, want %q", path, err, kind)
		}
	}
}

func ExampleCreate() {
	path := filepath.Join(os.TempDir(), "example.tok")
	defer os.Remove(path)
	w, _ := Create(path, Header{Modality: DNA, Vocab: 8, Tokenizer: "dna"})
	w.WriteDoc([]int32{0, 1, 2, 3, 6}, 4) // ACGT + eos: 4 bases
	w.WriteDoc([]int32{3, 3, 6}, 2)
	h, _ := w.Close()

	s, _ := Open(path, Expect{Modality: DNA, Vocab: 8})
	defer s.Close()
	dst := make([]int32, 3)
	s.Read(dst, 4)
	fmt.Println(h.Width, s.Len(), s.Docs(), s.Header().Units, dst)
	// Output: 1 8 [0 5] 6 [6 3 3]
}

// BenchmarkVerify measures the checksum and token scan of Open's verification
// (bytes/s of shard).
func BenchmarkVerify(b *testing.B) {
	for _, v := range []int{256, 50257} {
		b.Run(fmt.Sprintf("vocab=%d", v), func(b *testing.B) {
			doc := make([]int32, 1<<22)
			for i := range doc {
				doc[i] = int32(i * 7919 % v)
			}
			path, h := writeShard(b, v, [][]int32{doc})
			s, err := Open(path, Expect{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(h.Tokens * int64(h.Width))
			for b.Loop() {
				if err := s.Verify(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
