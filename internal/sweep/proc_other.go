//go:build !linux

package sweep

import "syscall"

// childAttr: without Linux's parent-death signal, the runs of a killed sweep run
// on; the sweep lock, which they hold, keeps a new sweep out until they end.
func childAttr() *syscall.SysProcAttr { return nil }
