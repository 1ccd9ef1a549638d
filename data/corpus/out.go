package corpus

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/data/tokenize"
	"github.com/mambago/mamba/internal/regfile"
)

// Prepare never leaves a half-written output: the shards and the manifest are
// built in a hidden directory beside the output and moved into it only when
// every split succeeded. The output directory must be absent, empty, or an
// earlier prepare of the same modality and tokenizer, whose files are then
// replaced; nothing else a user put there is touched.

// manifestFiles returns the files listed in dir's manifest (nil when absent).
func manifestFiles(dir string) ([]string, error) {
	raw, err := regfile.ReadFile(filepath.Join(dir, Manifest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		_, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok || filepath.Base(file) != file || !strings.HasSuffix(file, ".tok") {
			return nil, fmt.Errorf("malformed %s line %q", Manifest, sc.Text())
		}
		files = append(files, file)
	}
	return files, nil
}

// checkOut fails unless out may receive a prepare with tok: it is absent,
// empty, or holds only an earlier prepare of the same modality and
// tokenizer (its manifest and shards) and the directory keep (the downloads,
// "" for none).
func checkOut(out string, tok tokenize.Tokenizer, keep string) error {
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("--out %s is not a directory", out)
	}
	es, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	listed, err := manifestFiles(out)
	if err != nil {
		return fmt.Errorf("--out %s: %v", out, err)
	}
	var others []string
	for _, e := range es {
		n := e.Name()
		if n != Manifest && n != keep && !slices.Contains(listed, n) {
			others = append(others, n)
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("--out %s is not empty and not the output of `train prepare` (it holds %s): choose another directory", out, strings.Join(others, ", "))
	}
	for _, file := range listed {
		sh, err := shard.Open(filepath.Join(out, file), shard.Expect{})
		if err != nil {
			continue // damaged: rewritten like the rest
		}
		h := sh.Header()
		sh.Close()
		if h.Modality != tok.Modality() || h.Tokenizer != tok.Name() {
			return fmt.Errorf("--out %s holds a %s corpus tokenized with %s: choose another directory for %s with %s", out, h.Modality, h.Tokenizer, tok.Modality(), tok.Name())
		}
	}
	return nil
}

// missingAncestor returns the outermost directory of dir's path that does not
// exist ("" when dir exists).
func missingAncestor(dir string) string {
	missing := ""
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			return missing
		}
		missing = p
		if filepath.Dir(p) == p {
			return missing
		}
	}
}

// removeEmpty removes dir/keep and dir and its ancestors up to and including
// top when they are empty: what a failed prepare created and left empty.
func removeEmpty(dir, keep, top string) {
	if keep != "" {
		os.Remove(filepath.Join(dir, keep)) // fails, as wanted, unless empty
	}
	if top == "" {
		return
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if err := os.Remove(p); (err != nil && !errors.Is(err, os.ErrNotExist)) || p == top || filepath.Dir(p) == p {
			return
		}
	}
}

// install moves the shards and then the manifest built in tmp into out,
// removes the shards of out's previous manifest that the new one does not
// list, and removes tmp.
func install(tmp, out string) error {
	old, _ := manifestFiles(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	files, err := manifestFiles(tmp)
	if err != nil {
		return err
	}
	for _, f := range append(files, Manifest) {
		if err := os.Rename(filepath.Join(tmp, f), filepath.Join(out, f)); err != nil {
			return err
		}
	}
	for _, f := range old {
		if !slices.Contains(files, f) {
			os.Remove(filepath.Join(out, f))
		}
	}
	return os.RemoveAll(tmp)
}
