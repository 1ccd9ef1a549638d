package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/regfile"
	"github.com/mambago/mamba/internal/strictjson"

	"github.com/mambago/mamba/data"
	"github.com/mambago/mamba/data/safetensors"
	"github.com/mambago/mamba/optim"
)

// A checkpoint is the directory OUT/checkpoints/step-N:
//
//	config.json, model.safetensors   the model, transformers layout (Model.Save)
//	optimizer.safetensors            AdamW moments exp_avg.<param>, exp_avg_sq.<param>; metadata "updates"
//	trainer_state.json               step, counters, data cursor, resolved run config
//	manifest.json                    SHA-256 of every other file, written last
//
// It is written into a temporary directory, every file synced, then renamed into
// place, so a checkpoint directory is either complete or absent.
const (
	checkpointsDir = "checkpoints"
	manifestFile   = "manifest.json"
	stateFile      = "trainer_state.json"
	optimizerFile  = "optimizer.safetensors"
	stepPrefix     = "step-"
)

// trainerState is everything besides weights and moments that a resumed run needs.
type trainerState struct {
	Step        int             `json:"step"`        // updates attempted (including skipped ones)
	Skipped     int             `json:"skipped"`     // non-finite steps skipped so far
	Consecutive int             `json:"consecutive"` // non-finite steps in a row at the end
	Tokens      int64           `json:"tokens"`      // training tokens consumed
	ElapsedS    float64         `json:"elapsed_s"`   // training wall time so far
	Cursor      data.Cursor     `json:"cursor"`      // training stream position (holds its RNG state)
	Config      json.RawMessage `json:"config"`      // the resolved run config
	// The modality and tokenizer of the shards trained on ("" for synthetic
	// tasks, and in checkpoints written before they were recorded).
	Modality  string `json:"modality,omitempty"`
	Tokenizer string `json:"tokenizer,omitempty"`
	// Pending is the metric line of the step checkpointed, when a signal
	// stopped its evaluation: a resumed run evaluates, then writes it.
	Pending *Metric `json:"pending_metric,omitempty"`
}

type manifest struct {
	Step  int               `json:"step"`
	Files map[string]string `json:"files"` // name → hex SHA-256
}

// saveCheckpoint writes checkpoint step under root and returns its directory.
func saveCheckpoint(root string, m Model, opt *optim.AdamW, st trainerState) (string, error) {
	final := filepath.Join(root, fmt.Sprintf("%s%d", stepPrefix, st.Step))
	tmp, err := os.MkdirTemp(root, ".tmp-"+stepPrefix)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := m.Save(tmp); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	ost := opt.State()
	ts := make([]safetensors.Tensor, 0, 2*len(ost.Names))
	for i, n := range ost.Names {
		ts = append(ts,
			safetensors.Tensor{Name: "exp_avg." + n, Shape: []int{len(ost.M[i])}, F32: ost.M[i]},
			safetensors.Tensor{Name: "exp_avg_sq." + n, Shape: []int{len(ost.V[i])}, F32: ost.V[i]})
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, optimizerFile), ts, map[string]string{"updates": strconv.FormatInt(ost.Updates, 10)}); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	sj, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), sj); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	man := manifest{Step: st.Step, Files: map[string]string{}}
	entries, err := readDirNames(tmp)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	for _, name := range entries {
		if man.Files[name], err = fileSHA256(filepath.Join(tmp, name)); err != nil {
			return "", fmt.Errorf("checkpoint: %w", err)
		}
	}
	mj, _ := json.MarshalIndent(man, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(tmp, manifestFile), mj); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := syncDir(tmp); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	// A directory of the same step can only be left by an earlier, now replayed,
	// attempt of this run: it is replaced.
	if err := removeAll(final); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := rename(tmp, final); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	done = true
	if err := syncDir(root); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return final, nil
}

// Indirections so that tests can fail a checkpoint write midway, or the
// first write of a run (a full disk).
var (
	removeAll = os.RemoveAll
	rename    = os.Rename
	writeFile = atomicfile.WriteFile
)

// readDirNames lists the regular files of dir, sorted.
func readDirNames(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func fileSHA256(path string) (string, error) {
	f, err := regfile.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// VerifyCheckpoint checks that dir is a complete checkpoint whose files match the
// SHA-256 sums of its manifest.
func VerifyCheckpoint(dir string) error {
	raw, err := regfile.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("checkpoint %s is incomplete or not a checkpoint: no %s", dir, manifestFile)
		}
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var man manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return fmt.Errorf("checkpoint %s: corrupt %s: %v", dir, manifestFile, err)
	}
	for _, need := range []string{"config.json", "model.safetensors", optimizerFile, stateFile} {
		if _, ok := man.Files[need]; !ok {
			return fmt.Errorf("checkpoint %s: %s does not list %s", dir, manifestFile, need)
		}
	}
	names := make([]string, 0, len(man.Files))
	for n := range man.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("checkpoint %s: %s is missing or unreadable", dir, n)
		}
		if sum != man.Files[n] {
			return fmt.Errorf("checkpoint %s: %s is corrupt or truncated (SHA-256 mismatch)", dir, n)
		}
	}
	return nil
}

// checkpointSteps lists the step-N directories of root, newest first.
func checkpointSteps(root string) ([]int, error) {
	es, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var steps []int
	for _, e := range es {
		if s, ok := strings.CutPrefix(e.Name(), stepPrefix); ok && e.IsDir() {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				steps = append(steps, n)
			}
		}
	}
	slices.Sort(steps)
	slices.Reverse(steps)
	return steps, nil
}

func stepDir(root string, step int) string {
	return filepath.Join(root, fmt.Sprintf("%s%d", stepPrefix, step))
}

// LatestCheckpoint returns the newest checkpoint under out/checkpoints that verifies.
// Checkpoints newer than it that fail verification are reported in skipped.
func LatestCheckpoint(out string) (dir string, skipped []error, err error) {
	root := filepath.Join(out, checkpointsDir)
	steps, err := checkpointSteps(root)
	if err != nil {
		return "", nil, fmt.Errorf("resume: %w", err)
	}
	for _, s := range steps {
		d := stepDir(root, s)
		if err := VerifyCheckpoint(d); err != nil {
			skipped = append(skipped, err)
			continue
		}
		return d, skipped, nil
	}
	if len(skipped) > 0 {
		return "", skipped, fmt.Errorf("resume: no valid checkpoint in %s (newest: %v)", root, skipped[0])
	}
	return "", nil, fmt.Errorf("resume: no checkpoint in %s", root)
}

// pruneCheckpoints deletes all but the keep newest checkpoints and any temporary
// directories left by interrupted writes.
func pruneCheckpoints(root string, keep int) error {
	steps, err := checkpointSteps(root)
	if err != nil {
		return err
	}
	for _, s := range steps[min(keep, len(steps)):] {
		if err := os.RemoveAll(stepDir(root, s)); err != nil {
			return err
		}
	}
	return removeTemps(root)
}

func removeTemps(root string) error {
	es, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range es {
		if strings.HasPrefix(e.Name(), ".tmp-"+stepPrefix) { // saveCheckpoint's
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// readState reads the trainer state of a verified checkpoint.
// TrainedOn returns the kind of data the model in dir was trained on, as its
// checkpoint records it; empty for a directory that is not a checkpoint of
// ours (a transformers directory), a synthetic task, or a checkpoint older
// than the record.
func TrainedOn(dir string) (Kind, error) {
	if _, err := os.Lstat(filepath.Join(dir, stateFile)); err != nil {
		return Kind{}, nil
	}
	st, err := readState(dir)
	return Kind{st.Modality, st.Tokenizer}, err
}

// CheckpointStep returns the step of checkpoint dir, from its trainer state;
// ok is false for a directory that is not a checkpoint of ours.
func CheckpointStep(dir string) (step int, ok bool, err error) {
	if _, err := os.Lstat(filepath.Join(dir, stateFile)); err != nil {
		return 0, false, nil
	}
	st, err := readState(dir)
	return st.Step, err == nil, err
}

func readState(dir string) (trainerState, error) {
	var st trainerState
	raw, err := regfile.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("checkpoint %s: corrupt %s: %v", dir, stateFile, err)
	}
	// Checkpoints written before configs were decoded strictly stored an empty
	// run.freeze as null, which ParseConfig now refuses: such a null (ours, so
	// it means "the default") is dropped.
	tree, err := strictjson.Decode(st.Config)
	if err != nil {
		return st, fmt.Errorf("checkpoint %s: corrupt config in %s: %v", dir, stateFile, err)
	}
	st.Config, _ = json.Marshal(dropNulls(tree)) // a decoded tree: cannot fail
	return st, nil
}

// dropNulls deletes the null members of every object in v.
func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
			} else {
				v[k] = dropNulls(e)
			}
		}
	case []any:
		for i, e := range v {
			v[i] = dropNulls(e)
		}
	}
	return v
}

// readOptimizer fills an optim.State for the parameters named in names.
func readOptimizer(dir string, names []string) (optim.State, error) {
	path := filepath.Join(dir, optimizerFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return optim.State{}, fmt.Errorf("checkpoint: %w", err)
	}
	up, err := strconv.ParseInt(f.Metadata["updates"], 10, 64)
	if err != nil {
		return optim.State{}, fmt.Errorf("checkpoint %s: no valid \"updates\" in its metadata", path)
	}
	s := optim.State{Updates: up, Names: names}
	for _, n := range names {
		m, _, err := f.Float32("exp_avg." + n)
		if err != nil {
			return optim.State{}, fmt.Errorf("checkpoint %s: %w", path, err)
		}
		v, _, err := f.Float32("exp_avg_sq." + n)
		if err != nil {
			return optim.State{}, fmt.Errorf("checkpoint %s: %w", path, err)
		}
		s.M, s.V = append(s.M, m), append(s.V, v)
	}
	return s, nil
}
