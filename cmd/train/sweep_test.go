package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
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

	"golang.org/x/sys/unix"

	"github.com/mambago/mamba/train/killtest"
)

const smokeSweep = "../../configs/sweeps/smoke.json"

// sweepArgs runs the smoke sweep into out with a small bootstrap (the fit's cost).
func sweepArgs(out string) []string {
	return []string{"sweep", "--config", smokeSweep, "--out", out, "--bootstrap", "40"}
}

// The smoke sweep runs end to end and writes every output; run again, it redoes nothing.
func TestSweepSmoke(t *testing.T) {
	out := filepath.Join(t.TempDir(), "smoke")
	r := runBin(t, sweepArgs(out)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	for _, f := range []string{"runs.csv", "runs.json", "fit.json", "loss-vs-tokens.png", "loss-vs-compute.png", "loss-vs-params.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty", f)
		}
	}
	rows := readCSV(t, filepath.Join(out, "runs.csv"))
	if len(rows) != 13 || strings.Join(rows[0][:4], ",") != "arch,params,tokens,loss" {
		t.Fatalf("runs.csv: %d lines, header %v", len(rows), rows[0])
	}
	if !strings.Contains(r.stdout, "sweep finished: 12 runs") || !strings.Contains(r.stdout, "alpha") {
		t.Errorf("stdout lacks the end line or the fit table:\n%s", r.stdout)
	}
	var fit map[string]map[string]any
	if err := json.Unmarshal(fileBytes(t, filepath.Join(out, "fit.json")), &fit); err != nil || fit["mamba"]["n_runs"] != 6.0 || fit["transformer"]["n_runs"] != 6.0 {
		t.Errorf("fit.json: %v, %v", fit, err)
	}

	logs := invocations(t, out)
	r = runBin(t, sweepArgs(out)...)
	if r.code != 0 || !strings.Contains(r.stdout, "12 runs (12 finished, 0 to run)") {
		t.Fatalf("second sweep: exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	if again := invocations(t, out); !maps(again, logs) {
		t.Errorf("the second sweep ran runs again: %v, was %v", again, logs)
	}

	r = runBin(t, "sweep", "fit", "--runs", filepath.Join(out, "runs.csv"), "--json", "--bootstrap", "20")
	var got map[string]map[string]json.RawMessage
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("sweep fit --json: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, arch := range []string{"mamba", "transformer"} {
		var ci map[string][2]float64
		m := got[arch]
		if json.Unmarshal(m["ci"], &ci) != nil || len(ci) != 7 || string(m["n_runs"]) != "6" {
			t.Errorf("sweep fit --json, %s: %s", arch, r.stdout)
		}
		for _, k := range []string{"E", "A", "alpha", "B", "beta", "a", "b"} {
			var v float64
			if json.Unmarshal(m[k], &v) != nil {
				t.Errorf("sweep fit --json, %s: %s is %s, not a number", arch, k, m[k])
			}
		}
	}
}

// Killing the sweep's process group at random moments and running the same command
// again continues it: no finished run is run again, and the results equal an
// uninterrupted sequential sweep's bit for bit (wall times aside), though the killed
// sweep runs two at a time.
func TestSweepSIGKILLResume(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref")
	if r := runBin(t, sweepArgs(ref)...); r.code != 0 {
		t.Fatalf("reference sweep: exit %d: %s", r.code, r.stderr)
	}
	out := filepath.Join(dir, "killed")
	lines := func() int {
		n := 0
		ms, _ := filepath.Glob(filepath.Join(out, "*", "metrics.jsonl"))
		for _, m := range ms {
			raw, _ := os.ReadFile(m)
			n += bytes.Count(raw, []byte("\n"))
		}
		return n
	}
	rng := rand.New(rand.NewPCG(7, 1))
	finished := map[string][]byte{} // run → its summary.json when first seen finished
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt == 40 {
			t.Fatalf("sweep did not finish after %d kills", kills)
		}
		// Two runs at once: the results must still equal the sequential reference's.
		cmd := exec.Command(bin, append(sweepArgs(out), "--parallel", "2")...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		target := lines() + 1 + rng.IntN(40)
		delay := time.Duration(rng.IntN(30000)) * time.Microsecond
		killed, err := killtest.Run(cmd, lines, target, delay, time.Millisecond)
		if killed {
			kills++
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the runs too
			waitUnlocked(t, out)
		} else if err != nil {
			t.Fatalf("sweep failed: %v: %s", err, stderr.Bytes())
		}
		// Runs seen finished stay untouched.
		sums, _ := filepath.Glob(filepath.Join(out, "*", "summary.json"))
		for _, s := range sums {
			raw := fileBytes(t, s)
			run := filepath.Base(filepath.Dir(s))
			if prev, ok := finished[run]; ok && !bytes.Equal(prev, raw) {
				t.Fatalf("finished run %s was run again", run)
			}
			if bytes.Contains(raw, []byte(`"finished": true`)) {
				finished[run] = raw
			}
		}
		if !killed {
			break
		}
	}
	if kills < 2 {
		t.Fatalf("only %d kills landed; the test did not exercise resuming", kills)
	}
	t.Logf("finished after %d SIGKILLs", kills)

	// runs.csv, less the wall-time columns, and fit.json equal the reference's.
	strip := func(rows [][]string) [][]string {
		h := rows[0]
		wall, rate := slices.Index(h, "wall_s"), slices.Index(h, "tokens_per_s")
		for _, r := range rows {
			r[wall], r[rate] = "", ""
		}
		return rows
	}
	got, want := strip(readCSV(t, filepath.Join(out, "runs.csv"))), strip(readCSV(t, filepath.Join(ref, "runs.csv")))
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("runs.csv differs from the uninterrupted sweep's:\n%v\nwant\n%v", got, want)
	}
	if !bytes.Equal(fileBytes(t, filepath.Join(out, "fit.json")), fileBytes(t, filepath.Join(ref, "fit.json"))) {
		t.Errorf("fit.json differs from the uninterrupted sweep's")
	}
	ckpts, _ := filepath.Glob(filepath.Join(ref, "*", "checkpoints", "step-*", "model.safetensors"))
	if len(ckpts) < 6 {
		t.Fatalf("%d reference checkpoints", len(ckpts))
	}
	for _, c := range ckpts {
		rel, _ := filepath.Rel(ref, c)
		if !bytes.Equal(fileBytes(t, c), fileBytes(t, filepath.Join(out, rel))) {
			t.Errorf("%s differs from the uninterrupted sweep's", rel)
		}
	}
}

func TestSweepBadInput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	unknown := writeFile(t, dir, "unknown.json", `{"base": {}, "sizes": [{"name": "a", "model": {"d_model": 8}}], "budgett": {}}`)
	arch := writeFile(t, dir, "arch.json", `{"base": {}, "archs": ["mamba", "rnn"], "sizes": [{"name": "a", "model": {"d_model": 8}}]}`)
	badModel := writeFile(t, dir, "model.json", `{"base": {}, "sizes": [{"name": "a", "model": {"d_model": -8}}]}`)
	few := writeFile(t, dir, "few.csv", "arch,params,tokens,loss\nmamba,1e5,1e6,3\nmamba,2e5,1e6,2.9\n")
	neg := writeFile(t, dir, "neg.csv", "arch,params,tokens,loss\n"+strings.Repeat("mamba,1e5,1e6,3\n", 5)+"mamba,-1,1e6,3\n")
	header := writeFile(t, dir, "header.csv", "params,arch,tokens,loss\n")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"sweep", "--out", out}, "--config FILE is required"},
		{"missing config", []string{"sweep", "--config", filepath.Join(dir, "none.json"), "--out", out}, "file does not exist"},
		{"unknown key", []string{"sweep", "--config", unknown, "--out", out}, `unknown field "budgett"`},
		{"unknown arch", []string{"sweep", "--config", arch, "--out", out}, `arch must be "mamba" or "transformer", got "rnn"`},
		{"bad model", []string{"sweep", "--config", badModel, "--out", out}, "d_model must be positive"},
		{"parallel 0", []string{"sweep", "--config", smokeSweep, "--out", out, "--parallel", "0"}, "--parallel must be >= 1"},
		{"fit: few runs", []string{"sweep", "fit", "--runs", few}, "2 runs, the fit needs at least 5"},
		{"fit: negative", []string{"sweep", "fit", "--runs", neg}, "run 6 has params -1"},
		{"fit: header", []string{"sweep", "fit", "--runs", header}, "header must start with arch,params,tokens,loss"},
		{"fit: no file", []string{"sweep", "fit", "--runs", filepath.Join(dir, "none.csv")}, "none.csv"},
	} {
		checkBadInput(t, c.name, runBin(t, c.args...), c.want, out)
	}
	// A run directory the sweep did not make is not touched.
	foreign := filepath.Join(dir, "foreign")
	writeFile(t, filepath.Join(mkdir(t, filepath.Join(foreign, "mamba-t8-tpp1-s1"))), "notes.txt", "mine")
	r := runBin(t, sweepArgs(foreign)...)
	checkBadInput(t, "foreign run directory", r, "was not made by a sweep", "")
	if string(fileBytes(t, filepath.Join(foreign, "mamba-t8-tpp1-s1", "notes.txt"))) != "mine" {
		t.Errorf("the sweep changed a file it did not make")
	}
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(fileBytes(t, path))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// invocations counts, per run directory, the train commands its train.log records.
func invocations(t *testing.T, out string) map[string]int {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(out, "*", "train.log"))
	n := map[string]int{}
	for _, l := range logs {
		for _, line := range strings.Split(string(fileBytes(t, l)), "\n") {
			if strings.HasPrefix(line, "# ") {
				n[filepath.Base(filepath.Dir(l))]++
			}
		}
	}
	return n
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// waitUnlocked waits until no process of a killed sweep holds its lock.
func waitUnlocked(t *testing.T, out string) {
	t.Helper()
	f, err := os.Open(filepath.Join(out, ".sweep.lock"))
	if err != nil {
		return // killed before it was made
	}
	defer f.Close()
	for range 500 {
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the killed sweep's runs still hold its lock after 5 s")
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSweepHelp(t *testing.T) {
	for _, args := range [][]string{{"sweep", "--help"}, {"sweep", "fit", "--help"}} {
		r := runBin(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "--json") || r.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runBin(t, "--help"); !strings.Contains(r.stdout, "train sweep --config FILE --out DIR") {
		t.Errorf("train --help does not mention train sweep")
	}
}

// An LR search runs first; the other budgets train at the winning rate, and the
// losing runs stay out of runs.csv.
func TestSweepLRSearch(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "search.json", `{
	  "base": {"model": {"vocab_size": 16, "d_state": 4},
	           "data": {"task": "selective_copying", "vocab": 16, "tokens": 2, "seq_len": 32, "batch_size": 4, "eval_batches": 2}},
	  "sizes": [{"name": "t8", "model": {"d_model": 8, "n_layer": 1}}],
	  "budget": {"tokens_per_param": [1, 2]},
	  "lr": {"search": [0.1, 3]},
	  "evals": 2, "checkpoints": 1}`)
	out := filepath.Join(dir, "out")
	r := runBin(t, "sweep", "--config", cfg, "--out", out, "--bootstrap", "10")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	var res map[string]struct {
		Multipliers []float64
		Losses      []float64
		Chosen      float64
	}
	if err := json.Unmarshal(fileBytes(t, filepath.Join(out, "lr-search.json")), &res); err != nil {
		t.Fatal(err)
	}
	s := res["mamba-t8"]
	best := 0
	if s.Losses[1] < s.Losses[0] {
		best = 1
	}
	if len(s.Losses) != 2 || s.Chosen != s.Multipliers[best] {
		t.Fatalf("lr-search.json: %+v", s)
	}
	var rc struct {
		Optim struct {
			LR float64 `json:"lr"`
		} `json:"optim"`
	}
	if err := json.Unmarshal(fileBytes(t, filepath.Join(out, "mamba-t8-tpp2-s1", "run-config.json")), &rc); err != nil || rc.Optim.LR != 3e-3*s.Chosen {
		t.Errorf("the second budget's lr %v (%v), want %v × 3e-3", rc.Optim.LR, err, s.Chosen)
	}
	rows := readCSV(t, filepath.Join(out, "runs.csv"))
	runCol := slices.Index(rows[0], "run")
	if len(rows) != 3 || rows[1][runCol] != fmt.Sprintf("mamba-t8-tpp1-s1-lrx%g", s.Chosen) || rows[2][runCol] != "mamba-t8-tpp2-s1" {
		t.Errorf("runs.csv rows %v", rows)
	}
}
