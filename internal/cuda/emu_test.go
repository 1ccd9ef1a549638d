package cuda

import (
	"os"
	"testing"

	"github.com/mambago/mamba/internal/cuda/emulator"
)

// emuTests is the selection of CUDA tests TestHostEmulator runs: all of them (half a minute on two
// cores); MAMBA_CUDA_EMU_RUN replaces it.
const emuTests = `CUDA`

// TestHostEmulator runs CUDA tests on the host emulator of the kernels (package emulator): the Go
// bindings, parameter structs, launch geometry and the kernels' logic, end to end, without a GPU. It
// cannot see what only hardware shows (timing, races that the host threads happen not to hit, the
// special-function unit's exp).
func TestHostEmulator(t *testing.T) {
	run := emuTests
	if v := os.Getenv("MAMBA_CUDA_EMU_RUN"); v != "" {
		run = v
	}
	emulator.Rerun(t, run, EnvDriverLib, EnvBLASLib, EnvRequire+"=1")
}
