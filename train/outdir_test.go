package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A directory of someone else's files is refused as --out and left alone,
// unless Force; a run's own directory is not foreign.
func TestForeignOutRefused(t *testing.T) {
	cfg := fakeConfig()
	mine := t.TempDir()
	os.WriteFile(filepath.Join(mine, "metrics.csv"), []byte("my,own\n"), 0o644)
	os.MkdirAll(filepath.Join(mine, checkpointsDir, ".tmp-notes"), 0o755)
	_, err := Run(context.Background(), cfg, fakeOptions(mine))
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "is not empty and is not a run directory (it holds checkpoints)") {
		t.Fatalf("foreign --out: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(mine, "metrics.csv")); string(b) != "my,own\n" {
		t.Error("the refused directory's metrics.csv was overwritten")
	}
	if es, _ := os.ReadDir(mine); len(es) != 2 {
		t.Errorf("the refused directory now holds %d entries", len(es))
	}
	if _, err := os.Stat(filepath.Join(mine, checkpointsDir, ".tmp-notes")); err != nil {
		t.Error("the refused directory's checkpoints/.tmp-notes was deleted")
	}
	o := fakeOptions(mine)
	o.Force = true
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mine, checkpointsDir, ".tmp-notes")); err != nil {
		t.Error("a forced run deleted checkpoints/.tmp-notes, which is not its own")
	}
	// The run's directory is a run: it resumes without --force.
	cfg.Run.MaxSteps += 5
	o = fakeOptions(mine)
	o.Resume = true
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Errorf("resuming the forced run: %v", err)
	}
}

// A second run into the directory of a running one is refused with the
// first's process id; the first is unaffected.
func TestSecondRunIntoOneOutRefused(t *testing.T) {
	cfg := fakeConfig()
	out := filepath.Join(t.TempDir(), "run")
	var second error
	o := fakeOptions(out)
	o.Backend = fakeBackend{hook: func(m *fakeModel) {
		m.onStep = func(k int) {
			if k == 3 {
				_, second = Run(context.Background(), cfg, fakeOptions(out))
			}
		}
	}}
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Fatalf("first run: %v", err)
	}
	var ie *InputError
	if want := fmt.Sprintf("is in use by another run (process %d)", os.Getpid()); !errors.As(second, &ie) || !strings.Contains(second.Error(), want) {
		t.Errorf("second run: %v, want an InputError containing %q", second, want)
	}
	if ms := readMetrics(t, out); len(ms) != cfg.Run.MaxSteps {
		t.Errorf("the first run wrote %d metric lines, want %d", len(ms), cfg.Run.MaxSteps)
	}
}

// A disk that is full at start (the first metric write fails with ENOSPC)
// leaves no metrics, checkpoints/ or lock behind: not in a directory the run
// made, nor in an empty one that was there.
func TestFullDiskAtStartLeavesNothing(t *testing.T) {
	real := writeFile
	defer func() { writeFile = real }()
	writeFile = func(path string, data []byte) error {
		if len(data) > 0 {
			return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
		}
		return real(path, data)
	}
	cfg := fakeConfig()
	empty := t.TempDir()
	for _, out := range []string{filepath.Join(t.TempDir(), "new", "run"), empty} {
		_, err := Run(context.Background(), cfg, fakeOptions(out))
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("%s: %v, want an InputError naming the full disk", out, err)
		}
		if out != empty {
			if _, err := os.Stat(filepath.Dir(out)); err == nil {
				t.Errorf("%s: the directories the run made are still there", out)
			}
		} else if es, _ := os.ReadDir(out); len(es) != 0 {
			t.Errorf("the empty --out now holds %d entries", len(es))
		}
	}
}
