package sweep

import "syscall"

// childAttr makes a run's process receive SIGKILL when the sweep's thread that
// started it dies, so that a killed sweep leaves no run training behind it, and
// puts it in a process group of its own: a terminal's Ctrl-C reaches the sweep
// alone, which passes one SIGTERM on (two signals would kill the run before its
// checkpoint).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
