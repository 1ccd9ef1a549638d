//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// CPUTime returns the process's CPU time so far (user and system) and true. On a machine that
// others share, the CPU time of a benchmark counts the work done where its wall time counts the
// waiting too.
func CPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
