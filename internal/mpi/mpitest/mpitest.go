// Package mpitest launches test programs under mpirun on the one machine.
package mpitest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// RequireEnv names the variable that makes a missing mpirun a test failure rather
// than a skip (CI sets it once it has installed Open MPI).
const RequireEnv = "MAMBA_REQUIRE_MPI"

// Command returns `mpirun -np ranks name args...` for this machine: root allowed
// (CI containers), more ranks than cores allowed, output of every rank on the
// command's stdout and stderr. Without mpirun the test is skipped with the reason,
// or fails when RequireEnv is set.
func Command(t testing.TB, ranks int, name string, args ...string) *exec.Cmd {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("%s is set but mpirun is not installed: %v", RequireEnv, err)
		}
		t.Skipf("not run: mpirun is not installed (%v); install openmpi-bin to run the MPI tests", err)
	}
	a := append([]string{"--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", strconv.Itoa(ranks), name}, args...)
	return exec.Command(mpirun, a...)
}
