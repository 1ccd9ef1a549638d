//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An --out holding someone else's files is refused with one line and left
// alone; --force writes into it.
func TestForeignOutNeedsForce(t *testing.T) {
	mine := t.TempDir()
	writeFile(t, mine, "metrics.csv", "my,own\n")
	os.MkdirAll(filepath.Join(mine, "checkpoints", ".tmp-draft"), 0o755)
	checkBadInput(t, "foreign out", runBin(t, append(tinyRun(2, 0), "--out", mine)...), "is not empty and is not a run directory", "")
	if b, _ := os.ReadFile(filepath.Join(mine, "metrics.csv")); string(b) != "my,own\n" {
		t.Error("the refused --out's metrics.csv was overwritten")
	}
	if es, _ := os.ReadDir(mine); len(es) != 2 {
		t.Errorf("the refused --out now holds %d entries", len(es))
	}
	if r := runBin(t, append(tinyRun(2, 0), "--out", mine, "--force")...); r.code != 0 {
		t.Fatalf("--force: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(mine, "checkpoints", ".tmp-draft")); err != nil {
		t.Error("the forced run deleted checkpoints/.tmp-draft, which is not its own")
	}
}

// A second run into the --out of a running one gets one line naming the
// first's process and exit 2; the first goes on and stops cleanly.
func TestTwoRunsIntoOneOut(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, append(slowSteps, "--out", out)...)
	stderr := started(t, cmd)
	waitFor(t, "run lock", nonEmpty(filepath.Join(out, ".train.lock")))
	for _, args := range [][]string{append(tinyRun(2, 0), "--out", out), {"--resume", "--out", out}} {
		checkBadInput(t, strings.Join(args[len(args)-2:], " "), runBin(t, args...), fmt.Sprintf("is in use by another run (process %d)", cmd.Process.Pid), "")
	}
	waitFor(t, "metrics line", nonEmpty(filepath.Join(out, "metrics.jsonl")))
	cmd.Process.Signal(syscall.SIGTERM)
	if ws := waitExit(t, cmd, time.Minute); ws.ExitStatus() != 130 || !hasCheckpoint(out) {
		t.Fatalf("the first run after SIGTERM: %v, stderr %q", ws, stderr)
	}
}

// A disk that is full at start (a 64 KiB tmpfs, filled, in a private mount
// namespace) gives exit 2 and one line, and leaves no output directory.
func TestFullDiskAtStart(t *testing.T) {
	if exec.Command("unshare", "--user", "--map-root-user", "--mount", "true").Run() != nil {
		t.Skip("no unprivileged mount namespace here (unshare fails): the train package's TestFullDiskAtStartLeavesNothing covers this through a seam")
	}
	mnt := t.TempDir()
	out := filepath.Join(mnt, "run")
	script := `mount -t tmpfs -o size=64k tmpfs "$1" && (cat /dev/zero > "$1/fill" 2>/dev/null; true) && shift && exec "$@"`
	args := append([]string{"--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", mnt, bin}, append(tinyRun(2, 0), "--out", out)...)
	c := exec.Command("unshare", args...)
	var o, e strings.Builder
	c.Stdout, c.Stderr = &o, &e
	c.Run()
	checkBadInput(t, "full disk", result{code: c.ProcessState.ExitCode(), stdout: o.String(), stderr: e.String()}, "no space left on device", "")
	// The tmpfs was private to the command: what it left is checked there.
	check := `mount -t tmpfs -o size=64k tmpfs "$1" && (cat /dev/zero > "$1/fill" 2>/dev/null; true) && shift && "$@"; ls -A "$0"`
	ls := exec.Command("unshare", append([]string{"--user", "--map-root-user", "--mount", "sh", "-c", check, mnt, mnt, bin}, append(tinyRun(2, 0), "--out", out)...)...)
	got, _ := ls.Output()
	if strings.TrimSpace(string(got)) != "fill" {
		t.Errorf("a run on a full disk left %q beside the filler", strings.Fields(string(got)))
	}
}
