package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/data/shard"
)

// makeShard writes documents of the given lengths; token i of the corpus is
// (i·7 + doc) mod vocab, so windows are easy to predict.
func makeShard(t testing.TB, m shard.Modality, vocab int, lens ...int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "split.tok")
	w, err := shard.Create(path, shard.Header{Modality: m, Vocab: vocab, Tokenizer: "test"})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for d, n := range lens {
		doc := make([]int32, n)
		for j := range doc {
			doc[j] = int32((i*7 + d) % vocab)
			i++
		}
		if err := w.WriteDoc(doc, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func open(t testing.TB, path string, o LoaderOptions) *Loader {
	t.Helper()
	l, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// take returns copies of the next n batches.
func take(t testing.TB, s Source, n int) []Batch {
	t.Helper()
	out := make([]Batch, n)
	var b Batch
	for i := range out {
		if err := s.Next(&b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		out[i] = Batch{Batch: b.Batch, Len: b.Len, Inputs: slices.Clone(b.Inputs), Targets: slices.Clone(b.Targets), Resets: slices.Clone(b.Resets)}
	}
	return out
}

func sameBatches(t *testing.T, what string, a, b []Batch) {
	t.Helper()
	for i := range a {
		if a[i].Batch != b[i].Batch || a[i].Len != b[i].Len || !slices.Equal(a[i].Inputs, b[i].Inputs) ||
			!slices.Equal(a[i].Targets, b[i].Targets) || !slices.Equal(a[i].Resets, b[i].Resets) {
			t.Fatalf("%s: batch %d differs", what, i)
		}
	}
}

func TestLoaderWindows(t *testing.T) {
	path := makeShard(t, shard.Text, 256, 100, 50, 150)
	sh, err := shard.Open(path, shard.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	corpus := make([]int32, sh.Len())
	sh.Read(corpus, 0)
	sh.Close()
	for _, order := range []Order{Random, Sequential} {
		l := open(t, path, LoaderOptions{Batch: 3, Len: 16, Seed: 5, Order: order, Resets: true})
		for _, b := range take(t, l, 20) {
			for r := range b.Batch {
				in, tg := b.Inputs[r*16:(r+1)*16], b.Targets[r*16:(r+1)*16]
				start := -1
				for s := 0; s+17 <= len(corpus) && start < 0; s++ {
					if slices.Equal(corpus[s:s+16], in) {
						start = s
					}
				}
				if start < 0 {
					t.Fatalf("%v: row %d is not a window of the corpus", order, r)
				}
				for i, v := range tg {
					doc := start+i+1 == 100 || start+i+1 == 150
					if want := corpus[start+i+1]; (doc && v != -1) || (!doc && v != want) {
						t.Fatalf("%v: row %d: target %d is %d, want the next token %d, or -1 at a document's first", order, r, i, v, want)
					}
				}
				for i, v := range b.Resets[r*16 : (r+1)*16] {
					doc := start+i == 0 || start+i == 100 || start+i == 150
					if (v == 1) != doc {
						t.Fatalf("%v: reset at window offset %d (token %d) = %d", order, i, start+i, v)
					}
				}
			}
		}
	}
}

func TestLoaderDeterministicAndResumable(t *testing.T) {
	path := makeShard(t, shard.DNA, 8, 5000, 3000)
	for _, order := range []Order{Random, Sequential} {
		o := LoaderOptions{Batch: 4, Len: 64, Seed: 42, Order: order, Resets: true}
		plain := take(t, open(t, path, o), 40)

		o.Prefetch = 3
		a := open(t, path, o)
		sameBatches(t, "prefetch vs none", plain, take(t, a, 40))

		// Save the cursor mid-stream (the prefetcher is already ahead), go on,
		// then restore into a fresh loader and into the same one.
		b := open(t, path, o)
		take(t, b, 13)
		saved, err := json.Marshal(b.Cursor())
		if err != nil {
			t.Fatal(err)
		}
		sameBatches(t, "continued", plain[13:], take(t, b, 27))
		var c Cursor
		if err := json.Unmarshal(saved, &c); err != nil || c.Step != 13 {
			t.Fatalf("cursor %s: %v", saved, err)
		}
		fresh := open(t, path, o)
		if err := fresh.Restore(c); err != nil {
			t.Fatal(err)
		}
		sameBatches(t, "resumed in a new loader", plain[13:], take(t, fresh, 27))
		if err := b.Restore(c); err != nil {
			t.Fatal(err)
		}
		sameBatches(t, "rewound", plain[13:], take(t, b, 27))

		o.Seed = 43
		other := open(t, path, o)
		if err := other.Restore(c); err == nil || !strings.Contains(err.Error(), "cursor belongs to") {
			t.Errorf("cursor of another seed: err = %v", err)
		}
		if order == Random && slices.Equal(take(t, other, 1)[0].Inputs, plain[0].Inputs) {
			t.Error("seeds 42 and 43 gave the same first batch")
		}
	}
}

func TestLoaderPasses(t *testing.T) {
	path := makeShard(t, shard.Text, 256, 101) // (101-1)/10 = 10 windows per pass
	l := open(t, path, LoaderOptions{Batch: 4, Len: 10, Order: Sequential, Passes: 2, Prefetch: 2})
	if l.Windows() != 10 {
		t.Fatalf("Windows() = %d, want 10", l.Windows())
	}
	got := take(t, l, 5) // 20 windows = 2 passes
	var b Batch
	if err := l.Next(&b); !errors.Is(err, io.EOF) {
		t.Fatalf("after 2 passes: err = %v, want io.EOF", err)
	}
	if err := l.Next(&b); !errors.Is(err, io.EOF) {
		t.Fatalf("EOF is not sticky: %v", err)
	}
	if got[2].Inputs[2*10] != got[0].Inputs[0] || got[2].Inputs[2*10] != 0 {
		t.Errorf("window 10 should restart the pass at token 0")
	}
	l2 := open(t, path, LoaderOptions{Batch: 4, Len: 10, Order: Sequential, Passes: 1})
	last := take(t, l2, 3)[2] // windows 8, 9 and two padding rows
	for i := 20; i < 40; i++ {
		if last.Inputs[i] != 0 || last.Targets[i] != -1 {
			t.Fatalf("padding row position %d: input %d target %d, want 0 and -1", i, last.Inputs[i], last.Targets[i])
		}
	}
	if err := l2.Next(&b); !errors.Is(err, io.EOF) {
		t.Fatalf("after 1 pass: err = %v, want io.EOF", err)
	}
}

func TestLoaderLongContext(t *testing.T) {
	const L = 1 << 20
	path := makeShard(t, shard.DNA, 8, L/2, L/2+7)
	l := open(t, path, LoaderOptions{Batch: 1, Len: L, Seed: 1, Resets: true, Expect: shard.Expect{Modality: shard.DNA, Vocab: 8}})
	b := take(t, l, 1)[0]
	if len(b.Inputs) != L || b.Targets[L-2] != b.Inputs[L-1] {
		t.Fatalf("window of 2^20: %d inputs", len(b.Inputs))
	}
	n := 0
	for _, r := range b.Resets {
		n += int(r)
	}
	if n != 1 {
		t.Errorf("%d document starts inside a 2^20 window that spans one boundary", n)
	}
}

func TestOpenRefuses(t *testing.T) {
	path := makeShard(t, shard.Text, 256, 10)
	for _, o := range []LoaderOptions{
		{Batch: 0, Len: 4},
		{Batch: 1, Len: 10},                          // needs 11 tokens
		{Batch: 1, Len: 4, Order: Random, Passes: 1}, // passes need sequential
		{Batch: 1, Len: 4, Prefetch: -1},
		{Batch: 1, Len: 4, Expect: shard.Expect{Vocab: 50257}},
	} {
		if l, err := Open(path, o); err == nil {
			l.Close()
			t.Errorf("Open accepted %+v", o)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.tok")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty, LoaderOptions{Batch: 1, Len: 4}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
}

// writeDocs writes docs as a text shard at path.
func writeDocs(t *testing.T, path string, vocab int, docs [][]int32) {
	t.Helper()
	w, err := shard.Create(path, shard.Header{Modality: shard.Text, Vocab: vocab, Tokenizer: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := w.WriteDoc(d, int64(len(d))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// A directory of shards reads as their concatenation in name order: the
// batches, document starts and cursors equal those of one shard holding
// every document, windows spanning two files included.
func TestDirectoryOfShards(t *testing.T) {
	var docs [][]int32
	for d, n := range []int{30, 7, 45, 12, 60, 3, 25} {
		doc := make([]int32, n)
		for j := range doc {
			doc[j] = int32((j*13 + d*5) % 97)
		}
		docs = append(docs, doc)
	}
	one := filepath.Join(t.TempDir(), "all.tok")
	writeDocs(t, one, 97, docs)
	dir := t.TempDir()
	writeDocs(t, filepath.Join(dir, "part-000.tok"), 97, docs[:2])
	writeDocs(t, filepath.Join(dir, "part-001.tok"), 97, docs[2:3])
	writeDocs(t, filepath.Join(dir, "part-002.tok"), 97, docs[3:])
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a shard"), 0o644)
	for _, order := range []Order{Random, Sequential} {
		o := LoaderOptions{Batch: 3, Len: 11, Seed: 4, Order: order, Resets: true, Verify: true}
		a, b := open(t, one, o), open(t, dir, o)
		if a.Header().Tokens != b.Header().Tokens || a.Header().Docs != b.Header().Docs || a.Header().Units != b.Header().Units {
			t.Fatalf("headers %+v and %+v", a.Header(), b.Header())
		}
		want := take(t, a, 12)
		sameBatches(t, order.String()+" directory vs one shard", want, take(t, b, 12))
		// Resume from a cursor of the directory loader.
		c := open(t, dir, o)
		cur := b.Cursor()
		cur.Step = 5
		if err := c.Restore(cur); err != nil {
			t.Fatal(err)
		}
		sameBatches(t, order.String()+" restored", want[5:], take(t, c, 7))
		if err := a.Restore(cur); err == nil {
			t.Error("a cursor of the directory restored into the single shard")
		}
	}
}

func TestDirectoryOfShardsRefuses(t *testing.T) {
	prepared := t.TempDir()
	writeDocs(t, filepath.Join(prepared, "train.tok"), 50, [][]int32{{1, 2, 3, 4, 5, 6}})
	writeDocs(t, filepath.Join(prepared, "valid.tok"), 50, [][]int32{{1, 2, 3, 4, 5, 6}})
	mixed := t.TempDir()
	writeDocs(t, filepath.Join(mixed, "a.tok"), 50, [][]int32{{1, 2, 3, 4, 5, 6}})
	writeDocs(t, filepath.Join(mixed, "b.tok"), 60, [][]int32{{1, 2, 3, 4, 5, 6}})
	corrupt := t.TempDir()
	writeDocs(t, filepath.Join(corrupt, "a.tok"), 50, [][]int32{{1, 2, 3, 4, 5, 6}})
	writeDocs(t, filepath.Join(corrupt, "b.tok"), 50, [][]int32{{1, 2, 3, 4, 5, 6}})
	raw, _ := os.ReadFile(filepath.Join(corrupt, "b.tok"))
	raw[shard.HeaderSize+2] ^= 1
	os.WriteFile(filepath.Join(corrupt, "b.tok"), raw, 0o644)
	for _, tc := range []struct{ name, path, want string }{
		{"prepare output", prepared, "holds the splits train.tok, valid.tok of one `train prepare` run"},
		{"no shards", t.TempDir(), "holds no *.tok shards"},
		{"different vocabularies", mixed, "does not match"},
		{"flipped byte in the second shard", corrupt, "b.tok: checksum mismatch"},
	} {
		l, err := Open(tc.path, LoaderOptions{Batch: 1, Len: 4, Verify: true})
		if err == nil {
			l.Close()
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line containing %q", tc.name, err, tc.want)
		}
	}
}

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "train.tok")
	w, _ := shard.Create(path, shard.Header{Modality: shard.Text, Vocab: 256, Tokenizer: "bytes"})
	w.WriteDoc([]int32{'h', 'e', 'l', 'l', 'o'}, 5)
	w.WriteDoc([]int32{'w', 'o', 'r', 'l', 'd'}, 5)
	w.Close()

	l, _ := Open(path, LoaderOptions{Batch: 2, Len: 4, Order: Sequential, Resets: true})
	defer l.Close()
	var b Batch
	l.Next(&b)
	fmt.Printf("%q %v %v\n", string(runes(b.Inputs[4:])), b.Targets[4:], b.Resets[4:])
	fmt.Println(l.Cursor().Step)
	// Output:
	// "owor" [-1 111 114 108] [0 1 0 0]
	// 1
}

func runes(t []int32) []rune {
	r := make([]rune, len(t))
	for i, v := range t {
		r[i] = rune(v)
	}
	return r
}

func BenchmarkLoader(b *testing.B) {
	for _, c := range []struct{ batch, len, prefetch int }{{8, 1024, 0}, {8, 1024, 2}, {1, 1 << 20, 0}} {
		b.Run(fmt.Sprintf("B=%d/L=%d/prefetch=%d", c.batch, c.len, c.prefetch), func(b *testing.B) {
			path := makeShard(b, shard.DNA, 8, 4<<20)
			l := open(b, path, LoaderOptions{Batch: c.batch, Len: c.len, Seed: 1, Prefetch: c.prefetch})
			var bt Batch
			b.SetBytes(int64(c.batch * c.len)) // "MB/s" reads as million tokens/s
			b.ResetTimer()
			for range b.N {
				if err := l.Next(&bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*c.batch*c.len)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
