//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runBinWithin is runBin with a deadline: a command that hangs fails the test.
func runBinWithin(t *testing.T, limit time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("train %s still running after %s", strings.Join(args, " "), limit)
	}
	r := result{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// tinyTrained trains a tiny model for two steps and returns its run directory.
func tinyTrained(t *testing.T) string {
	t.Helper()
	run := filepath.Join(t.TempDir(), "run")
	if r := runBin(t, append(tinyRun(2, 0), "--out", run)...); r.code != 0 {
		t.Fatalf("tiny run: exit %d: %s", r.code, r.stderr)
	}
	return run
}

// prepared runs the binary's prepare on a small text file and returns the
// directory of train.tok, valid.tok and test.tok.
func prepared(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var text strings.Builder
	for i := 0; text.Len() < 40_000; i++ {
		fmt.Fprintf(&text, "Line %d of a small corpus, said speaker %d.\n\n", i, i%5)
	}
	in := writeFile(t, dir, "input.txt", text.String())
	out := filepath.Join(dir, "shards")
	if r := runBin(t, "prepare", "--modality", "text", "--input", in, "--out", out); r.code != 0 {
		t.Fatalf("prepare of a single input.txt: exit %d: %s", r.code, r.stderr)
	}
	return out
}

// shardRun is a tiny run on token shards.
func shardRun(train, valid string, extra ...string) []string {
	return append(tinyRun(4, 0, "--set", "data.task=shards", "--set", "data.train="+train, "--set", "data.valid="+valid,
		"--set", "model.vocab_size=256"), extra...)
}

// resumOf rewrites a shard image's header checksum to match its body.
func resumOf(b []byte) []byte {
	sum := sha256.Sum256(b[128:])
	copy(b[64:96], sum[:])
	return b
}

// Bad data files reach the CLI as exit 2 with one line, before any output is
// written: a FIFO (which used to hang in open()), a flipped byte, a token
// beyond the vocabulary under a valid checksum, and a prepare directory named
// where one split is wanted. A directory of shards of one split trains.
func TestBadDataExitsTwo(t *testing.T) {
	sh := prepared(t)
	train, valid := filepath.Join(sh, "train.tok"), filepath.Join(sh, "valid.tok")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.tok")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(train)
	flipped := append([]byte(nil), good...)
	flipped[200] ^= 0x01
	writeFile(t, dir, "flipped.tok", string(flipped))
	beyond := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(beyond[16:], 100) // vocabulary 100: the text's bytes ≥ 100 are outside it
	writeFile(t, dir, "beyond.tok", string(resumOf(beyond)))
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name  string
		train string
		want  string
	}{
		{"fifo", fifo, "a named pipe (FIFO), not a regular file"},
		{"flipped byte", filepath.Join(dir, "flipped.tok"), "checksum mismatch"},
		{"token beyond the vocabulary", filepath.Join(dir, "beyond.tok"), "outside the vocabulary [0, 100)"},
		{"prepare directory", sh, "holds the splits test.tok, train.tok, valid.tok of one `train prepare` run"},
		{"empty directory", t.TempDir(), "holds no *.tok shards"},
	} {
		checkBadInput(t, tc.name, runBinWithin(t, time.Minute, append(shardRun(tc.train, valid), "--out", out)...), tc.want, out)
	}
	// data.verify=false skips the checksum: the flipped byte (still a byte) trains.
	if r := runBin(t, append(shardRun(filepath.Join(dir, "flipped.tok"), valid, "--set", "data.verify=false"), "--out", filepath.Join(dir, "unverified"))...); r.code != 0 {
		t.Errorf("data.verify=false: exit %d: %s", r.code, r.stderr)
	}
	// A directory of the shards of one split is one corpus.
	split := filepath.Join(dir, "split")
	os.Mkdir(split, 0o755)
	os.Link(train, filepath.Join(split, "part-0.tok"))
	os.Link(valid, filepath.Join(split, "part-1.tok"))
	run := filepath.Join(dir, "dirrun")
	if r := runBin(t, append(shardRun(split, valid), "--out", run)...); r.code != 0 {
		t.Fatalf("directory of shards: exit %d: %s", r.code, r.stderr)
	}
	if r := runBinWithin(t, time.Minute, "eval", "--checkpoint", run, "--set", "data.valid="+fifo); r.code != 2 || !strings.Contains(r.stderr, "named pipe") {
		t.Errorf("eval with a FIFO as data.valid: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Config files and overrides that encoding/json accepted silently.
func TestStrictConfigExitsTwo(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"trailing word", []string{"--config", writeFile(t, dir, "a.json", `{"run": {"max_steps": 3}} x`)}, "data after the top-level value"},
		{"extra brace", []string{"--config", writeFile(t, dir, "b.json", `{"run": {"max_steps": 3}}}`)}, "data after the top-level value"},
		{"duplicate key", []string{"--config", writeFile(t, dir, "c.json", `{"run": {"max_steps": 3, "max_steps": 4}}`)}, `duplicate key "run.max_steps"`},
		{"repeated section", []string{"--config", writeFile(t, dir, "d.json", `{"optim": {"lr": 0.01}, "optim": {"beta2": 0.9}}`)}, `duplicate key "optim"`},
		{"null", []string{"--config", writeFile(t, dir, "e.json", `{"data": {"seq_len": null}}`)}, `key "data.seq_len" is null`},
		{"set null", []string{"--set", "run.seed=null"}, `override "run.seed=null": null is not a value`},
		{"shortened text config", []string{"--config", filepath.Join("..", "..", "configs", "text.json"), "--set", "run.max_steps=10"}, "--set optim.warmup_steps=1"},
	} {
		checkBadInput(t, tc.name, runBin(t, append(tc.args, "--out", out)...), tc.want, out)
	}
}

// editedModel copies a checkpoint's model into a fresh directory, with
// config.json and model.safetensors edited.
func editedModel(t *testing.T, ck string, cfg func(map[string]any), weights func([]byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	raw, _ := os.ReadFile(filepath.Join(ck, "config.json"))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	cfg(m)
	b, _ := json.Marshal(m)
	writeFile(t, dir, "config.json", string(b))
	w, _ := os.ReadFile(filepath.Join(ck, "model.safetensors"))
	writeFile(t, dir, "model.safetensors", string(weights(w)))
	return dir
}

// Checkpoints that used to panic or load silently: a null required field of
// config.json (init-from, eval, generate), NaN weights, a manifest deleted
// from our checkpoint, and an optimizer.safetensors whose shape overflows
// (resume, with the manifest rewritten to match).
func TestBadCheckpointsExitTwo(t *testing.T) {
	run := tinyTrained(t)
	ck := lastCheckpoint(t, run)
	same := func(b []byte) []byte { return b }
	nullLayers := editedModel(t, ck, func(m map[string]any) { m["num_hidden_layers"] = nil }, same)
	nan := editedModel(t, ck, func(map[string]any) {}, func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[len(b)-4:], math.Float32bits(float32(math.NaN()))) // the last weight
		return b
	})
	unmanifested := filepath.Join(t.TempDir(), "ck")
	os.CopyFS(unmanifested, os.DirFS(ck))
	os.Remove(filepath.Join(unmanifested, "manifest.json"))
	pipedWeights := editedModel(t, ck, func(map[string]any) {}, same)
	os.Remove(filepath.Join(pipedWeights, "model.safetensors"))
	pipedManifest := filepath.Join(t.TempDir(), "ck")
	os.CopyFS(pipedManifest, os.DirFS(ck))
	os.Remove(filepath.Join(pipedManifest, "manifest.json"))
	for _, p := range []string{filepath.Join(pipedWeights, "model.safetensors"), filepath.Join(pipedManifest, "manifest.json")} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"init-from weights that are a FIFO", []string{"--init-from", pipedWeights, "--out", out}, "model.safetensors: a named pipe (FIFO), not a regular file"},
		{"eval of a checkpoint whose manifest is a FIFO", []string{"eval", "--checkpoint", pipedManifest}, "manifest.json: a named pipe (FIFO), not a regular file"},
		{"init-from null field", []string{"--init-from", nullLayers, "--out", out}, `required field "num_hidden_layers" is null`},
		{"eval null field", []string{"eval", "--checkpoint", nullLayers, "--config", filepath.Join("..", "..", "configs", "quickstart.json")}, `required field "num_hidden_layers" is null`},
		{"generate null field", []string{"generate", "--checkpoint", nullLayers, "--prompt-ids", "1,2"}, `required field "num_hidden_layers" is null`},
		{"init-from NaN weights", []string{"--init-from", nan, "--out", out}, "holds NaN"},
		{"init-from without manifest", []string{"--init-from", unmanifested, "--out", out}, "no manifest.json"},
		{"generate without manifest", []string{"generate", "--checkpoint", unmanifested, "--prompt-ids", "1,2"}, "no manifest.json"},
	} {
		checkBadInput(t, tc.name, runBinWithin(t, time.Minute, tc.args...), tc.want, out)
	}

	// An optimizer state whose shape overflows to 0 bytes, under a manifest
	// that agrees (a crafted file): resume refuses it.
	header := `{"exp_avg.backbone.embeddings.weight":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]},"__metadata__":{"updates":"2"}}`
	evil := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	evil = append(evil, header...)
	if err := os.WriteFile(filepath.Join(ck, "optimizer.safetensors"), evil, 0o644); err != nil {
		t.Fatal(err)
	}
	man, _ := os.ReadFile(filepath.Join(ck, "manifest.json"))
	sum := sha256.Sum256(evil)
	man = regexp.MustCompile(`("optimizer.safetensors": ")[0-9a-f]+`).ReplaceAll(man, []byte("${1}"+hex.EncodeToString(sum[:])))
	os.WriteFile(filepath.Join(ck, "manifest.json"), man, 0o644)
	before, _ := os.ReadDir(run)
	checkBadInput(t, "resume overflowing optimizer state", runBin(t, "--resume", "--out", run), "overflows", "")
	if after, _ := os.ReadDir(run); len(after) != len(before) {
		t.Errorf("a refused resume changed the run directory")
	}
}

// prepare fails with exit 2 and leaves no output directory; an --out that
// holds the user's files is refused and left alone.
func TestPrepareExitsTwoAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "new", "out")
	books := filepath.Join(dir, "books")
	os.Mkdir(books, 0o755)
	for i := range 5 {
		writeFile(t, books, fmt.Sprintf("%d.txt", i), strings.Repeat("some text ", 20+i))
	}
	bad := writeFile(t, dir, "bad.jsonl", "{\"txt\": 1}\n")
	checkBadInput(t, "bad valid input", runBin(t, "prepare", "--modality", "text", "--input", books, "--valid-input", bad, "--out", out), "bad.jsonl:1", filepath.Join(dir, "new"))
	mine := filepath.Join(dir, "mine")
	os.Mkdir(mine, 0o755)
	writeFile(t, mine, "thesis.txt", "do not touch")
	checkBadInput(t, "foreign out", runBin(t, "prepare", "--modality", "text", "--input", books, "--out", mine), "not the output of `train prepare`", "")
	if es, _ := os.ReadDir(mine); len(es) != 1 {
		t.Errorf("the refused --out now holds %d entries", len(es))
	}
	// A manifest that is a named pipe is refused, not waited on.
	piped := filepath.Join(dir, "piped")
	os.Mkdir(piped, 0o755)
	if err := syscall.Mkfifo(filepath.Join(piped, "MANIFEST.sha256"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkBadInput(t, "verify a piped manifest", runBinWithin(t, time.Minute, "prepare", "--verify", "--out", piped), "a named pipe (FIFO), not a regular file", "")
	checkBadInput(t, "prepare over a piped manifest", runBinWithin(t, time.Minute, "prepare", "--modality", "text", "--input", books, "--out", piped), "a named pipe (FIFO), not a regular file", "")
}
