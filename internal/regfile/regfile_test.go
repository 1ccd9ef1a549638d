package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4096, 100_003} {
		p := filepath.Join(dir, "f")
		want := []byte(strings.Repeat("x", size))
		os.WriteFile(p, want, 0o644)
		got, err := ReadFile(p)
		if err != nil || string(got) != string(want) {
			t.Errorf("size %d: %d bytes, %v", size, len(got), err)
		}
	}
	link := filepath.Join(dir, "link")
	os.Symlink(filepath.Join(dir, "f"), link)
	if _, err := ReadFile(link); err != nil {
		t.Errorf("symbolic link to a regular file: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
	var nr *NotRegularError
	if _, err := ReadFile(dir); !errors.As(err, &nr) || !strings.Contains(err.Error(), "a directory, not a regular file") {
		t.Errorf("directory: %v", err)
	}
}
