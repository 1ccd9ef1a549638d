// Package regfile opens and reads files that must be regular files: data
// shards, weights, checkpoints. Anything else is refused with an error that
// says what the path is, before it can block: open() of a named pipe waits
// for a writer, forever when there is none, and reading a device may never
// end.
//
// Open stats the path first, then opens it with O_NONBLOCK (where the system
// has it) and checks the opened file again, so a path swapped for a pipe in
// between cannot block either.
package regfile

import (
	"fmt"
	"io"
	"os"
)

// NotRegularError says that a path is not a regular file.
type NotRegularError struct {
	Path string
	Mode os.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s: %s, not a regular file", e.Path, Kind(e.Mode))
}

// Kind names the type of file that m describes ("a named pipe (FIFO)").
func Kind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// Open opens path for reading if it is a regular file (symbolic links
// followed); otherwise the error is a *NotRegularError.
func Open(path string) (*os.File, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, &NotRegularError{path, st.Mode()}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &NotRegularError{path, st.Mode()}
	}
	return f, nil
}

// ReadFile is os.ReadFile for a regular file only.
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w (the file changed while read)", path, err)
	}
	return b, nil
}
