package cuda

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// emuTests is the default selection of CUDA tests TestHostEmulator runs (a minute on two cores);
// MAMBA_CUDA_EMU_RUN replaces it (MAMBA_CUDA_EMU_RUN=CUDA runs them all, about 15 minutes).
const emuTests = `CUDAOpen$|CUDAScanFixtures|CUDAScanReset/1x64|CUDAScanMatchesReference/2x37x5x3|CUDAGraph|` +
	`CUDAConv1d/.Batch:2_Len:90|CUDAEmbedding|CUDAGemmTransposes|CUDABF16|CUDARMSNorm/37x100`

// TestHostEmulator compiles the kernels as host C++ into a stand-in libcuda.so.1 and libcublas
// (emu/: every CUDA thread a host thread, shared-memory barriers and warp shuffles emulated, guard
// bytes after every allocation and after the dynamic shared memory) and runs CUDA tests against them
// in a child process: the Go bindings, parameter structs, launch geometry and the kernels' logic,
// end to end, without a GPU. It cannot see what only hardware shows (timing, races that the host
// threads happen not to hit, the special-function unit's exp).
func TestHostEmulator(t *testing.T) {
	gxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skipf("not run: g++ (C++20) is needed to build the host emulator of the kernels: %v", err)
	}
	dir := t.TempDir()
	flags := []string{"-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-strict-aliasing",
		"-Wall", "-Wno-unknown-pragmas", "-Wno-unused-function"}
	for _, lib := range []struct{ out, src, def string }{
		{"libcuda.so.1", "fakecuda.cpp", "-DMAMBA_HOST_EMULATION"}, {"libcublas.so.13", "fakecublas.cpp", "-DMAMBA_HOST_EMULATION"},
	} {
		args := append(append([]string{}, flags...), lib.def, "-Iemu", "-o", filepath.Join(dir, lib.out), filepath.Join("emu", lib.src))
		if out, err := exec.Command(gxx, args...).CombinedOutput(); err != nil {
			t.Fatalf("g++ %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run := emuTests
	if v := os.Getenv("MAMBA_CUDA_EMU_RUN"); v != "" {
		run = v
	}
	cmd := exec.Command(os.Args[0], "-test.run", run, "-test.v", "-test.count", "1")
	cmd.Env = append(os.Environ(), EnvDriverLib+"="+filepath.Join(dir, "libcuda.so.1"),
		EnvBLASLib+"="+filepath.Join(dir, "libcublas.so.13"), EnvRequire+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the CUDA tests failed on the host emulator: %v", err)
	}
	passed := regexp.MustCompile(`(?m)^--- PASS: TestCUDA`).FindAll(out, -1)
	if len(passed) == 0 || regexp.MustCompile(`(?m)^--- (FAIL|SKIP)`).Match(out) {
		t.Fatalf("the emulated run passed %d CUDA tests and failed or skipped others", len(passed))
	}
}
