//go:build !unix

package scan

import "time"

// cpuTime reports false: no CPU-time metric without getrusage.
func cpuTime() (time.Duration, bool) { return 0, false }
