//go:build unix

package shard

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A named pipe without a writer used to block Open forever in open().
func TestOpenRefusesNamedPipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "train.tok")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Open(p, Expect{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "a named pipe (FIFO), not a regular file") || strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(fifo) = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open(fifo) still blocked after 10 s")
	}
}
