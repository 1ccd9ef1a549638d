// Package cudatest gives tests of packages that use package cuda their GPU: the device, or a skip
// that names why there is none (a failure when MAMBA_CUDA_REQUIRE=1, as gpucheck.sh sets), and the
// run of their CUDA tests on the host emulator.
package cudatest

import (
	"os"
	"sync"
	"testing"

	"github.com/mambago/mamba/internal/cuda"
	"github.com/mambago/mamba/internal/cuda/emulator"
)

// EnvRequire, set to 1, turns "no GPU here" from a skip into a failure.
const EnvRequire = "MAMBA_CUDA_REQUIRE"

var device = sync.OnceValues(func() (*cuda.Device, error) { return cuda.Open(0) })

// Device returns the process's GPU (shared by its tests), or skips tb naming why it cannot run
// (fails instead when MAMBA_CUDA_REQUIRE=1).
func Device(tb testing.TB) *cuda.Device {
	tb.Helper()
	d, err := device()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("no GPU although %s=1: %v", EnvRequire, err)
		}
		tb.Skipf("not run, needs an NVIDIA GPU: %v", err)
	}
	return d
}

// Emulated reports whether the tests run on the host emulator, which wants small shapes.
func Emulated() bool { return emulator.Emulated() }

// OnEmulator runs this test binary's tests that match run on the host emulator (see package
// emulator), requiring them to pass.
func OnEmulator(t *testing.T, run string) {
	t.Helper()
	emulator.Rerun(t, run, cuda.EnvDriverLib, cuda.EnvBLASLib, EnvRequire+"=1")
}
