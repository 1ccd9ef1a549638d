// Package killtest crashes a training process the hard way for the resume
// tests: it starts a command and, once the run's metrics file has grown to a
// chosen number of lines, waits a chosen delay and sends SIGKILL, so the kill
// lands anywhere in a step, a metrics write or a checkpoint write.
package killtest

import (
	"os/exec"
	"syscall"
	"time"
)

// Run starts cmd and waits for it, polling lines() every poll. When lines()
// reaches target it sleeps delay and kills the process. It reports whether
// the process was killed and, if it ended by itself, its exit error.
func Run(cmd *exec.Cmd, lines func() int, target int, delay, poll time.Duration) (killed bool, err error) {
	if err := cmd.Start(); err != nil {
		return false, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return false, err
		case <-tick.C:
			if lines() >= target {
				time.Sleep(delay)
				cmd.Process.Signal(syscall.SIGKILL)
				if err := <-done; err == nil {
					return false, nil // it finished before the signal landed
				}
				return true, nil
			}
		}
	}
}
