package sweep

import "syscall"

// childAttr makes a run's process receive SIGKILL when the sweep's thread that
// started it dies, so that a killed sweep leaves no run training behind it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
