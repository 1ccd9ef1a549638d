//go:build unix

package attention

import (
	"syscall"
	"time"
)

// cpuTime is the user and system CPU time of the process so far: on a loaded machine it counts
// the work done, where wall time counts the waiting too.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
