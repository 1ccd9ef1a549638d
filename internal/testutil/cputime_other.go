//go:build !unix

package testutil

import "time"

// CPUTime reports false: no CPU-time measure without getrusage.
func CPUTime() (time.Duration, bool) { return 0, false }
