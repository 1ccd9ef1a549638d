package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mambago/mamba/train/killtest"
)

var bin string // the train binary, built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "train-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "train")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func runBin(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
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

// tiny makes a run of the real model that takes a few seconds.
var tiny = []string{
	"--set", "model.d_model=16", "--set", "model.n_layer=1", "--set", "model.d_state=4",
	"--set", "data.seq_len=16", "--set", "data.batch_size=2", "--set", "data.tokens=2", "--set", "data.eval_batches=1",
	"--set", "optim.warmup_steps=2", "--set", "run.log_every=1", "--set", "run.eval_every=5",
}

func tinyRun(steps, every int, extra ...string) []string {
	a := append([]string{}, tiny...)
	a = append(a, "--set", fmt.Sprintf("run.max_steps=%d", steps), "--set", fmt.Sprintf("run.checkpoint_every=%d", every))
	return append(a, extra...)
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"eval", "--help"}, {"generate", "--help"}} {
		r := runBin(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	r := runBin(t, "--help")
	for _, want := range []string{"Examples:", "--set", "--resume", "--init-from", "run.max_steps"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkBadInput asserts exit status 2, exactly one line on stderr naming want,
// no panic, and that out was not created.
func checkBadInput(t *testing.T, name string, r result, want, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line containing %q", name, r.code, r.stderr, want)
	}
	if out != "" {
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: left a partial output directory %s", name, out)
		}
	}
}

func TestBadInputExitsTwo(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	malformed := writeFile(t, dir, "malformed.json", "{\"run\": {\"max_steps\": 3,\n")
	unknown := writeFile(t, dir, "unknown.json", `{"optim": {"lrr": 0.1}}`)
	wrongType := writeFile(t, dir, "type.json", `{"data": {"batch_size": "big"}}`)
	invalid := writeFile(t, dir, "invalid.json", `{"run": {"max_steps": -1}}`)
	file := writeFile(t, dir, "file", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing config", []string{"--config", filepath.Join(dir, "nope.json")}, "nope.json: file does not exist"},
		{"malformed config", []string{"--config", malformed}, "invalid JSON"},
		{"unknown key", []string{"--config", unknown}, `unknown key "optim.lrr"`},
		{"wrong type", []string{"--config", wrongType}, `key "data.batch_size": want an integer, got string`},
		{"wrong type via set", []string{"--set", "run.max_steps=abc"}, `key "run.max_steps"`},
		{"unknown key via set", []string{"--set", "run.steps=3"}, `unknown key "run.steps"`},
		{"invalid value", []string{"--config", invalid}, "run.max_steps must be >= 1"},
		{"missing data", []string{"--set", "data.task=shards", "--set", "data.train=" + filepath.Join(dir, "train.tok"),
			"--set", "data.valid=" + filepath.Join(dir, "valid.tok")}, "train.tok"},
		{"unwritable out", []string{"--out", filepath.Join(file, "run")}, "is not a directory"},
		{"unknown flag", []string{"--bogus"}, "unknown flag: --bogus"},
		{"stray argument", []string{"--resume", "--out", out, "extra"}, `unexpected argument "extra"`},
		{"unknown command", []string{"fly"}, `unknown command "fly"`},
		{"resume without out", []string{"--resume", "--config", invalid}, "--resume needs --out"},
		{"resume nothing", []string{"--resume", "--out", out}, "no checkpoint"},
		{"init-from missing", []string{"--init-from", filepath.Join(dir, "nomodel")}, "does not exist"},
		{"eval without checkpoint", []string{"eval"}, "--checkpoint DIR is required"},
	} {
		args := tc.args
		if !strings.Contains(strings.Join(args, " "), "--out") && tc.args[0] != "eval" && tc.args[0] != "--resume" {
			args = append(args, "--out", out)
		}
		checkBadInput(t, tc.name, runBin(t, args...), tc.want, out)
	}
}

// lastCheckpoint returns the newest step directory of a run.
func lastCheckpoint(t *testing.T, out string) string {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(out, "checkpoints", "step-*"))
	if len(ms) == 0 {
		t.Fatalf("no checkpoint in %s", out)
	}
	best, bestN := "", -1
	for _, m := range ms {
		var n int
		fmt.Sscanf(filepath.Base(m), "step-%d", &n)
		if n > bestN {
			best, bestN = m, n
		}
	}
	return best
}

func TestTrainEvalGenerateAndDamagedCheckpoints(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	r := runBin(t, append(tinyRun(6, 3), "--out", out)...)
	if r.code != 0 {
		t.Fatalf("tiny run: exit %d: %s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "config {") || !strings.Contains(r.stdout, "SUMMARY") || !strings.Contains(r.stdout, "step 6/6") {
		t.Errorf("stdout lacks the config line, log lines or summary:\n%s", r.stdout)
	}
	for _, f := range []string{"metrics.jsonl", "metrics.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	ck := lastCheckpoint(t, out)
	if e := runBin(t, "eval", "--checkpoint", out); e.code != 0 || !strings.Contains(e.stdout, "val accuracy") {
		t.Errorf("eval: exit %d, stdout %q, stderr %q", e.code, e.stdout, e.stderr)
	}
	if g := runBin(t, "generate", "--checkpoint", ck, "--prompt-ids", "2,3,1", "--tokens", "4", "--temperature", "0"); g.code != 0 || len(strings.Split(strings.TrimSpace(g.stdout), ",")) != 4 {
		t.Errorf("generate: exit %d, stdout %q, stderr %q", g.code, g.stdout, g.stderr)
	}
	if r := runBin(t, append(tinyRun(6, 3), "--out", out)...); r.code != 2 || !strings.Contains(r.stderr, "already holds a run") {
		t.Errorf("second run into the same --out: exit %d, stderr %q", r.code, r.stderr)
	}

	// Truncate the weights of the newest checkpoint and corrupt the older one.
	p := filepath.Join(ck, "model.safetensors")
	raw, _ := os.ReadFile(p)
	os.WriteFile(p, raw[:len(raw)/2], 0o644)
	older := filepath.Join(out, "checkpoints", "step-3", "trainer_state.json")
	raw, _ = os.ReadFile(older)
	os.WriteFile(older, bytes.Replace(raw, []byte(`"step": 3`), []byte(`"step": 4`), 1), 0o644)
	before, _ := os.ReadDir(out)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"resume truncated", []string{"--resume", "--out", out}, "model.safetensors is corrupt or truncated"},
		{"init-from truncated", []string{"--init-from", ck, "--out", filepath.Join(out, "ft")}, "model.safetensors is corrupt or truncated"},
		{"eval truncated", []string{"eval", "--checkpoint", ck}, "model.safetensors is corrupt or truncated"},
		{"init-from corrupt run", []string{"--init-from", out, "--out", filepath.Join(out, "ft")}, "no valid checkpoint"},
	} {
		checkBadInput(t, tc.name, runBin(t, tc.args...), tc.want, filepath.Join(out, "ft"))
	}
	after, _ := os.ReadDir(out)
	if len(after) != len(before) {
		t.Errorf("failed commands changed the run directory: %d entries, then %d", len(before), len(after))
	}
}

func readLosses(t *testing.T, out string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ls []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct {
			Step     int
			Loss     *float64
			GradNorm *float64 `json:"grad_norm"`
			ValLoss  *float64 `json:"val_loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%d %v %v", m.Step, *m.Loss, *m.GradNorm)
		if m.ValLoss != nil {
			s += fmt.Sprintf(" %v", *m.ValLoss)
		}
		ls = append(ls, s)
	}
	return ls
}

// metricLines counts the lines of a run's metrics.jsonl (0 when absent).
func metricLines(out string) int {
	raw, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	return bytes.Count(raw, []byte("\n"))
}

// The real model, killed with SIGKILL mid-run and resumed, ends bitwise where an
// uninterrupted run ends: same losses, same weights. Each kill lands a random
// number of logged steps after the (re)start, plus a random few milliseconds.
func TestSIGKILLAndResumeOfTheRealModel(t *testing.T) {
	const steps = 60
	ref := filepath.Join(t.TempDir(), "ref")
	if r := runBin(t, append(tinyRun(steps, 3), "--out", ref)...); r.code != 0 {
		t.Fatalf("reference run: exit %d: %s", r.code, r.stderr)
	}
	out := filepath.Join(t.TempDir(), "killed")
	kills := killUntilDone(t, tinyRun(steps, 3), out, rand.New(rand.NewPCG(7, 7)))
	if kills < 2 {
		t.Fatalf("only %d kills landed before the run finished", kills)
	}
	t.Logf("finished after %d SIGKILLs", kills)
	want, got := readLosses(t, ref), readLosses(t, out)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("metrics differ after kill+resume:\n got %q\nwant %q", got, want)
	}
	a, _ := os.ReadFile(filepath.Join(lastCheckpoint(t, ref), "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(lastCheckpoint(t, out), "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("final weights differ after kill+resume")
	}
}

// killUntilDone runs train with args into out and SIGKILLs it a random number of logged steps
// (and a random few milliseconds) after each (re)start, resuming with --resume, until the run
// finishes by itself; it returns the number of kills that landed.
func killUntilDone(t *testing.T, args []string, out string, rng *rand.Rand) int {
	t.Helper()
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt == 40 {
			t.Fatalf("run did not finish after %d kills", kills)
		}
		a := append(slices.Clone(args), "--out", out)
		if hasCheckpoint(out) {
			a = []string{"--resume", "--out", out}
		}
		cmd := exec.Command(bin, a...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		target := metricLines(out) + 1 + rng.IntN(12)
		delay := time.Duration(rng.IntN(3000)) * time.Microsecond
		killed, err := killtest.Run(cmd, func() int { return metricLines(out) }, target, delay, time.Millisecond)
		if killed {
			kills++
			continue
		}
		if err != nil {
			t.Fatalf("run %v: %v: %s", a, err, stderr.Bytes())
		}
		return kills
	}
}

func hasCheckpoint(out string) bool {
	ms, _ := filepath.Glob(filepath.Join(out, "checkpoints", "step-*", "manifest.json"))
	return len(ms) > 0
}

func TestSIGTERMCheckpointsAndExits(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, append(tinyRun(100000, 0), "--out", out)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Two logged steps at least, so that the checkpoint SIGTERM writes is past step 1
	// and a resume with run.max_steps=1 must be refused.
	for start := time.Now(); metricLines(out) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			cmd.Process.Kill()
			t.Fatal("fewer than two logged steps after a minute")
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("after SIGTERM: %v, stderr %q; want exit 130", err, stderr.String())
	}
	if !hasCheckpoint(out) {
		t.Fatal("no checkpoint written on SIGTERM")
	}
	if r := runBin(t, "--resume", "--out", out, "--set", "run.max_steps=1", "--set", "optim.warmup_steps=0"); r.code != 2 || !strings.Contains(r.stderr, "run.max_steps 1 is below the step") {
		t.Errorf("resume with fewer steps than done: exit %d, stderr %q; want exit 2 naming run.max_steps", r.code, r.stderr)
	}
}

// Fine-tuning starts from a transformers Mamba directory: the shared fixture
// (HF_FIXTURES_DIR, default ../shared/fixtures beside the repository; a
// relative path is taken from the repository root). A missing fixture fails.
func TestInitFromTransformersDirectory(t *testing.T) {
	dir := os.Getenv("HF_FIXTURES_DIR")
	if dir == "" {
		dir = filepath.Join("..", "shared", "fixtures")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // the tests run in <repo>/cmd/train
	}
	hf := filepath.Join(dir, "hf_shared_tiny")
	if _, err := os.Stat(filepath.Join(hf, "config.json")); err != nil {
		t.Fatalf("no transformers fixture at %s (HF_FIXTURES_DIR=%q; the fixtures come with ../shared/fixtures): %v", hf, os.Getenv("HF_FIXTURES_DIR"), err)
	}
	out := filepath.Join(t.TempDir(), "ft")
	r := runBin(t, append(tinyRun(4, 0, "--init-from", hf, "--set", `run.freeze=["backbone.embeddings.weight"]`), "--out", out)...)
	if r.code != 0 {
		t.Fatalf("init-from %s: exit %d: %s", hf, r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "the model section is the loaded model's") || !strings.Contains(r.stdout, `"d_model":32`) {
		t.Errorf("the run did not take the fixture's model config:\n%s", r.stdout)
	}
	got, _ := os.ReadFile(filepath.Join(lastCheckpoint(t, out), "config.json"))
	if !bytes.Contains(got, []byte(`"hidden_size": 32`)) {
		t.Errorf("fine-tuned checkpoint config.json = %s", got)
	}
}
