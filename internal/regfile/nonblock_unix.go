//go:build unix

package regfile

import "syscall"

// nonBlock keeps open() from waiting for the writer of a named pipe.
const nonBlock = syscall.O_NONBLOCK
