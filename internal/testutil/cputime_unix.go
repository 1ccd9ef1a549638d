//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// CPUTime returns the process's CPU time (user and system) and true. On a machine that others
// share, the CPU time of a one-thread run is a steadier measure than its wall-clock time.
func CPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
