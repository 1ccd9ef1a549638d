package cuda

import (
	"os"
	"testing"

	"github.com/mambago/mamba/internal/cuda/emulator"
)

// emuTests is the default selection of CUDA tests TestHostEmulator runs (a minute on two cores);
// MAMBA_CUDA_EMU_RUN replaces it (MAMBA_CUDA_EMU_RUN=CUDA runs them all, about 15 minutes).
const emuTests = `CUDAOpen$|CUDAScanFixtures|CUDAScanReset/1x64|CUDAScanMatchesReference/2x37x5x3|CUDAGraph|` +
	`CUDAConv1d/.Batch:2_Len:90|CUDAEmbedding|CUDAGemmTransposes|CUDABF16|CUDARMSNorm/37x100|CUDABackend`

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
