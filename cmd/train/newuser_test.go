//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mambago/mamba/data/wav"
)

// preparedAs runs prepare on a small generated corpus of modality (text
// with tokenizer, dna or audio) and returns the directory of its splits.
func preparedAs(t *testing.T, modality, tokenizer string) string {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var in string
	switch modality {
	case "text":
		var text strings.Builder
		for i := 0; text.Len() < 40_000; i++ {
			fmt.Fprintf(&text, "Line %d of a small corpus, said speaker %d.\n\n", i, i%5)
		}
		in = writeFile(t, dir, "input.txt", text.String())
	case "dna":
		var fa strings.Builder
		for c := range 30 {
			fmt.Fprintf(&fa, ">c%d\n", c)
			for range 2000 / 50 {
				for range 50 {
					fa.WriteByte("ACGT"[r.IntN(4)])
				}
				fa.WriteByte('\n')
			}
		}
		in = writeFile(t, dir, "g.fa", fa.String())
	case "audio":
		in = filepath.Join(dir, "wavs")
		os.Mkdir(in, 0o755)
		for k := range 12 {
			s := make([]int16, 16000)
			for i := range s {
				s[i] = int16(8000 * math.Sin(2*math.Pi*float64(200+50*k)*float64(i)/16000))
			}
			var b bytes.Buffer
			wav.Write(&b, 16000, s)
			writeFile(t, in, fmt.Sprintf("%d.wav", k), b.String())
		}
	}
	out := filepath.Join(dir, "shards")
	args := []string{"prepare", "--modality", modality, "--input", in, "--out", out, "--valid-frac", "0.25", "--test-frac", "0.25"}
	if tokenizer != "" {
		args = append(args, "--tokenizer", tokenizer)
	}
	if r := runBin(t, args...); r.code != 0 {
		t.Fatalf("prepare %s: exit %d: %s", modality, r.code, r.stderr)
	}
	return out
}

// trainedOn trains a tiny model on the shards of dir and returns the run.
func trainedOn(t *testing.T, dir string) string {
	t.Helper()
	run := filepath.Join(t.TempDir(), "run")
	if r := runBin(t, append(shardRun(filepath.Join(dir, "train.tok"), filepath.Join(dir, "valid.tok")), "--out", run)...); r.code != 0 {
		t.Fatalf("training on %s: exit %d: %s", dir, r.code, r.stderr)
	}
	return run
}

// A model too large for the memory, or a generation of too many tokens, is
// refused with one line naming the size, before anything is allocated (10^8
// layers used to allocate their layout in the config check; --tokens 10^12
// asked for 4 TB, and the largest int64 panicked).
func TestMemoryRefusedBeforeAllocating(t *testing.T) {
	run := tinyTrained(t)
	ck := lastCheckpoint(t, run)
	same := func(b []byte) []byte { return b }
	deep := editedModel(t, ck, func(m map[string]any) { m["num_hidden_layers"] = 100_000_000 }, same)
	wide := editedModel(t, ck, func(m map[string]any) {
		m["num_hidden_layers"], m["hidden_size"], m["intermediate_size"], m["time_step_rank"] = 4096, 8192, 16384, 512
	}, same)
	out := filepath.Join(t.TempDir(), "out")
	quick := filepath.Join("..", "..", "configs", "quickstart.json")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"10^8 layers", append(tinyRun(2, 0), "--set", "model.n_layer=100000000", "--out", out), "need about 16.0 TB, more than the"},
		{"over --max-memory", append(tinyRun(2, 0), "--max-memory", "10kB", "--out", out), "more than the limit of 10.0 kB"},
		{"over run.max_memory", append(tinyRun(2, 0), "--set", "run.max_memory=100kB", "--out", out), "more than the limit of 100.0 kB"},
		{"bad run.max_memory", append(tinyRun(2, 0), "--set", "run.max_memory=lots", "--out", out), `run.max_memory: size "lots"`},
		// A transformers config.json is bounded when parsed.
		{"init-from 10^8 layers", append(tinyRun(2, 0), "--init-from", deep, "--out", out), "num_hidden_layers 100000000 is more than 4096"},
		{"eval of 10^8 layers", []string{"eval", "--checkpoint", deep, "--config", quick}, "num_hidden_layers 100000000 is more than 4096"},
		{"generate with 10^8 layers", []string{"generate", "--checkpoint", deep, "--prompt-ids", "1,2"}, "num_hidden_layers 100000000 is more than 4096"},
		{"init-from 4096 layers of 8192", append(tinyRun(2, 0), "--init-from", wide, "--out", out), "TB, more than the"},
		{"generate with 4096 layers of 8192", []string{"generate", "--checkpoint", wide, "--prompt-ids", "1,2"}, "TB, more than the"},
		{"eval of 4096 layers of 8192", []string{"eval", "--checkpoint", wide, "--config", quick}, "TB, more than the"},
		{"4096 layers of d_model 8192", append(tinyRun(2, 0), "--set", "model.n_layer=4096", "--set", "model.d_model=8192", "--out", out), "TB, more than the"},
		{"generate 1e12 tokens", []string{"generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "1e12"}, "need about 40.0 TB"},
		{"generate 2^63-1 tokens", []string{"generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "9223372036854775807"}, "EB, more than the"},
		{"generate over --max-memory", []string{"generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "1000000", "--max-memory", "10MB"}, "more than the limit of 10.0 MB"},
		{"generate -5 tokens", []string{"generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "-5"}, "want a count of tokens ≥ 0"},
		{"generate 1.5 tokens", []string{"generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "1.5"}, "want a count of tokens ≥ 0"},
	} {
		checkBadInput(t, tc.name, runBinWithin(t, 30*time.Second, tc.args...), tc.want, out)
	}
	if r := runBin(t, "generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "1e2"); r.code != 0 || strings.Count(r.stdout, ",") != 99 {
		t.Errorf("--tokens 1e2: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// Sampling settings outside their ranges are refused: a negative temperature
// used to mean greedy.
func TestSamplingFlagsRefused(t *testing.T) {
	run := tinyTrained(t)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--temperature", "-1"}, "temperature must be a finite number ≥ 0 (0 = greedy), got -1"},
		{[]string{"--temperature", "NaN"}, "temperature must be a finite number"},
		{[]string{"--top-p", "0"}, "--top-p must be in (0, 1] (1 = no cut), got 0"},
		{[]string{"--top-p", "1.5"}, "--top-p must be in (0, 1]"},
		{[]string{"--top-p", "-0.2"}, "--top-p must be in (0, 1]"},
		{[]string{"--top-p", "NaN"}, "--top-p must be in (0, 1]"},
		{[]string{"--top-k", "-1"}, "top-k must be ≥ 0, got -1"},
	} {
		args := append([]string{"generate", "--checkpoint", run, "--prompt-ids", "1,2"}, tc.flags...)
		checkBadInput(t, strings.Join(tc.flags, " "), runBin(t, args...), tc.want, "")
	}
	for _, flags := range [][]string{{"--temperature", "0"}, {"--top-p", "1"}, {"--top-p", "0.5", "--top-k", "3"}} {
		if r := runBin(t, append([]string{"generate", "--checkpoint", run, "--prompt-ids", "1,2", "--tokens", "5"}, flags...)...); r.code != 0 {
			t.Errorf("%v: exit %d: %s", flags, r.code, r.stderr)
		}
	}
}

// Checkpoints record the modality and tokenizer they were trained on:
// generate needs no --tokenizer (and refuses another), a byte model refuses
// GPT-2 shards and DNA shards refuse a text config, each with one line.
func TestTokenizerInCheckpoints(t *testing.T) {
	text := preparedAs(t, "text", "bytes")
	run := trainedOn(t, text)
	var st struct{ Modality, Tokenizer string }
	json.Unmarshal(fileBytes(t, filepath.Join(lastCheckpoint(t, run), "trainer_state.json")), &st)
	if st.Modality != "text" || st.Tokenizer != "bytes" {
		t.Errorf("trainer_state.json records modality %q, tokenizer %q", st.Modality, st.Tokenizer)
	}
	r := runBin(t, "generate", "--checkpoint", run, "--prompt", "Line 7", "--tokens", "10", "--temperature", "0")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Line 7") || len(r.stdout) != len("Line 7")+10+1 {
		t.Errorf("generate without --tokenizer: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	gpt2, dna := preparedAs(t, "text", "gpt2"), preparedAs(t, "dna", "")
	out := filepath.Join(t.TempDir(), "out")
	gpt2Data := []string{"--set", "data.task=shards", "--set", "data.train=" + filepath.Join(gpt2, "train.tok"), "--set", "data.valid=" + filepath.Join(gpt2, "valid.tok")}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"generate with another tokenizer", []string{"generate", "--checkpoint", run, "--prompt", "Hi", "--tokenizer", "gpt2"}, "--tokenizer gpt2, but checkpoint"},
		{"generate text into an audio file", []string{"generate", "--checkpoint", run, "--prompt-ids", "1", "--wav", filepath.Join(out, "x.wav")}, "need an audio (mulaw) model"},
		{"byte model on GPT-2 shards (init-from)", append(append(tinyRun(2, 0), gpt2Data...), "--init-from", run, "--out", out),
			"holds text (gpt2 tokens), but the --init-from checkpoint"},
		{"byte model on GPT-2 shards (eval)", []string{"eval", "--checkpoint", run, "--set", "data.valid=" + filepath.Join(gpt2, "valid.tok")},
			"holds text (gpt2 tokens), but checkpoint"},
		{"byte model on GPT-2 shards (resume)", []string{"--resume", "--out", run, "--set", "data.valid=" + filepath.Join(gpt2, "valid.tok")},
			"holds text (gpt2 tokens), but checkpoint"},
		{"DNA shards under a text config", []string{"--config", filepath.Join("..", "..", "configs", "text.json"), "--set", "data.train=" + filepath.Join(dna, "train.tok"),
			"--set", "data.valid=" + filepath.Join(dna, "valid.tok"), "--out", out}, "holds dna (dna tokens), but data.modality asks for text"},
		{"DNA shards under data.tokenizer bytes", append(shardRun(filepath.Join(dna, "train.tok"), filepath.Join(dna, "valid.tok"), "--set", "data.tokenizer=bytes"), "--out", out),
			"holds dna (dna tokens), but data.tokenizer asks for bytes tokens"},
		{"inconsistent declaration", append(tinyRun(2, 0), "--set", "data.modality=dna", "--set", "data.tokenizer=gpt2", "--out", out), "data.tokenizer gpt2 makes text tokens, but data.modality is dna"},
	} {
		checkBadInput(t, tc.name, runBin(t, tc.args...), tc.want, out)
	}
}

// eval names the checkpoint, its step, the split, its shards and the tokens
// scored; --split test reads test.tok; DNA reports bits per base and audio
// bits per sample.
func TestEvalReport(t *testing.T) {
	for _, c := range []struct{ modality, unit string }{{"text", "val bits/byte"}, {"dna", "val bits/base"}, {"audio", "val bits/sample"}} {
		sh := preparedAs(t, c.modality, "")
		run := trainedOn(t, sh)
		for _, split := range []string{"valid", "test"} {
			r := runBin(t, "eval", "--checkpoint", run, "--split", split)
			want := []string{lastCheckpoint(t, run), "step", "│ 4 ", "split", split, filepath.Join(sh, split+".tok"), "tokens scored", c.unit}
			for _, w := range want {
				if r.code != 0 || !strings.Contains(r.stdout, w) {
					t.Errorf("%s eval --split %s: exit %d, want %q in\n%s%s", c.modality, split, r.code, w, r.stdout, r.stderr)
					break
				}
			}
		}
	}
	run := tinyTrained(t)
	checkBadInput(t, "test split of a synthetic task", runBin(t, "eval", "--checkpoint", run, "--split", "test"), "has no test split", "")
	checkBadInput(t, "unknown split", runBin(t, "eval", "--checkpoint", run, "--split", "train"), "--split must be valid or test", "")
}

// An audio model writes its samples as a 16 kHz WAV and is primed from a
// recording.
func TestAudioWav(t *testing.T) {
	sh := preparedAs(t, "audio", "")
	run := trainedOn(t, sh)
	dir := t.TempDir()
	s := make([]int16, 8000) // half a second at 8 kHz: resampled to 16 kHz
	for i := range s {
		s[i] = int16(6000 * math.Sin(float64(i)/5))
	}
	var b bytes.Buffer
	wav.Write(&b, 8000, s)
	in := writeFile(t, dir, "prompt.wav", b.String())
	outWav := filepath.Join(dir, "out.wav")
	r := runBin(t, "generate", "--checkpoint", run, "--prompt-wav", in, "--wav", outWav, "--tokens", "300")
	if r.code != 0 || !strings.Contains(r.stderr, "16000-token prompt") || !strings.Contains(r.stderr, "wrote 300 samples") {
		t.Fatalf("generate --prompt-wav --wav: exit %d, stderr %q", r.code, r.stderr)
	}
	f, err := os.Open(outWav)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := wav.Read(f)
	if err != nil || a.Rate != 16000 || len(a.Samples) != 300 || a.Channels != 1 {
		t.Fatalf("the written WAV: %+v, %v", a, err)
	}
	writeFile(t, dir, "bad.wav", "RIFF")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"text prompt to an audio model", []string{"generate", "--checkpoint", run, "--prompt", "hello"}, "an audio model takes --prompt-wav"},
		{"not a WAV", []string{"generate", "--checkpoint", run, "--prompt-wav", filepath.Join(dir, "bad.wav")}, "bad.wav: wav:"},
		{"missing WAV", []string{"generate", "--checkpoint", run, "--prompt-wav", filepath.Join(dir, "none.wav")}, "none.wav"},
		{"two prompts", []string{"generate", "--checkpoint", run, "--prompt-wav", in, "--prompt-ids", "1"}, "exactly one of"},
	} {
		checkBadInput(t, tc.name, runBin(t, tc.args...), tc.want, "")
	}
}
