// Package mpitest launches test programs under mpirun on the one machine.
package mpitest

import (
	"os/exec"
	"strconv"
	"testing"
)

// Command returns `mpirun -np ranks name args...` for this machine: root allowed
// and no cross-memory attach (CI containers often forbid both), more ranks than
// cores, no binding (each rank may use every core), output of every rank on the
// command's stdout and stderr. Without mpirun the test is skipped, saying so.
func Command(t testing.TB, ranks int, name string, args ...string) *exec.Cmd {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skipf("not run: mpirun is not installed (%v); install openmpi-bin to run the MPI tests", err)
	}
	a := append([]string{"--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
		"--mca", "btl_vader_single_copy_mechanism", "none", "-np", strconv.Itoa(ranks), name}, args...)
	return exec.Command(mpirun, a...)
}
