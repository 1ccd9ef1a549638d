//go:build unix

package scan

import (
	"syscall"
	"time"
)

// cpuTime returns the process's CPU time (user and system) and true. On a machine that others
// share, the CPU time of a one-worker run is a steadier measure than its wall-clock time.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
