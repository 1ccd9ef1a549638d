package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFile is the run lock in a run directory: held (flock) by the process
// that trains into it, so that a second one is refused instead of corrupting
// the first. It is left in place after the run.
const lockFile = ".train.lock"

// runDir is a run's claim on its output directory: the lock, and what the
// set-up created there, which a failed set-up removes again (so that bad
// input, or a disk full at start, leaves nothing behind).
type runDir struct {
	lock    *os.File
	created []string // paths created, oldest first
}

// claimDir makes out a run directory for this process: it refuses a directory
// that holds files but is not a run of ours unless force is set, creates out
// (and missing parents) and takes the run lock.
func claimDir(out string, force bool) (_ *runDir, err error) {
	if name, ok := foreign(out); ok && !force {
		return nil, fmt.Errorf("--out %s is not empty and is not a run directory (it holds %s): choose another --out, or pass --force to write metrics.* and checkpoints/ into it", out, name)
	}
	d := &runDir{}
	defer func() {
		if err != nil {
			d.undo()
		}
	}()
	var missing []string
	for p := filepath.Clean(out); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		missing = append(missing, p)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create output directory: %v", err)
	}
	slices.Reverse(missing)
	d.created = missing
	path := filepath.Join(out, lockFile)
	if _, err := os.Lstat(path); err != nil {
		d.created = append(d.created, path)
	}
	if d.lock, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("cannot write to output directory: %v", err)
	}
	if err := unix.Flock(int(d.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.lock.Close()
		d.lock = nil
		return nil, inUse(out, path)
	}
	// Who holds it, for the message above (a full disk may refuse: no matter).
	if d.lock.Truncate(0) == nil {
		d.lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return d, nil
}

// checkFree reports a run directory whose lock another process holds (a
// missing lock file is free); it creates nothing.
func checkFree(out string) error {
	path := filepath.Join(out, lockFile)
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		return nil
	}
	return inUse(out, path)
}

// inUse is the error of a run directory locked by another process, which is
// named when the lock file says which.
func inUse(out, lock string) error {
	who := "another run"
	if b, _ := os.ReadFile(lock); len(b) > 0 {
		who += " (process " + strings.TrimSpace(string(b)) + ")"
	}
	return fmt.Errorf("--out %s is in use by %s: wait for it to end, or choose another --out", out, who)
}

// foreign returns an entry of out when out is a directory that holds entries
// but is not a run of ours: none of metrics.jsonl, summary.json, the run lock
// or a checkpoints/ directory with a step-N checkpoint.
func foreign(out string) (string, bool) {
	es, err := os.ReadDir(out)
	if err != nil || len(es) == 0 {
		return "", false
	}
	for _, e := range es {
		switch e.Name() {
		case metricsJSONL, SummaryFile, lockFile:
			return "", false
		case checkpointsDir:
			if steps, _ := checkpointSteps(filepath.Join(out, checkpointsDir)); len(steps) > 0 {
				return "", false
			}
		}
	}
	return es[0].Name(), true
}

// made records a path the set-up created, when it did not exist before
// (existed is the result of an os.Lstat taken before creating it).
func (d *runDir) made(path string, existed error) {
	if d != nil && errors.Is(existed, os.ErrNotExist) {
		d.created = append(d.created, path)
	}
}

// undo removes what the set-up created, newest first (a directory only while
// empty), and releases the lock.
func (d *runDir) undo() {
	for _, p := range slices.Backward(d.created) {
		os.Remove(p)
	}
	d.created = nil
	d.release()
}

// release unlocks the directory (the lock file stays).
func (d *runDir) release() {
	if d != nil && d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}
