// Package emulator builds and runs the host emulator of package cuda's kernels for tests without a
// GPU: ../emu/fakecuda.cpp compiles the CUDA C sources of ../kernels as host C++ into a stand-in
// libcuda.so.1 (blocks on a few host threads, each CUDA thread a fiber switching at the barriers of
// __syncthreads and the warp shuffles, in an order that alternates so that a missing barrier shows;
// guard bytes after every allocation and the dynamic shared memory; streams synchronous; graphs
// replay what was recorded) and ../emu/fakecublas.cpp into a stand-in libcublas.so.13 (products in
// float64 on the host, submitted to the stand-in driver's stream). Package cuda loads them through
// the real Go bindings when MAMBA_CUDA_LIB and MAMBA_CUBLAS_LIB name them. MAMBA_EMU_PROFILE=1 makes
// the stand-in driver print the time of each kernel when a device is closed.
package emulator

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// EnvEmulated is set to 1 in the environment of the tests Rerun runs, so that they can choose
// shapes the emulator runs in seconds.
const EnvEmulated = "MAMBA_CUDA_EMULATED"

// Emulated reports whether this process runs on the emulator (Rerun's child).
func Emulated() bool { return os.Getenv(EnvEmulated) == "1" }

// Build compiles the stand-in libraries into dir with g++ (C++20) and returns their paths.
func Build(dir string) (driver, blas string, err error) {
	gxx, err := exec.LookPath("g++")
	if err != nil {
		return "", "", fmt.Errorf("g++ (C++20) is needed to build the host emulator of the kernels: %w", err)
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", "", fmt.Errorf("emulator: cannot locate the emulator's sources")
	}
	src := filepath.Join(filepath.Dir(self), "..", "emu")
	flags := []string{"-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-strict-aliasing",
		"-Wall", "-Wno-unknown-pragmas", "-Wno-unused-function", "-DMAMBA_HOST_EMULATION", "-I" + src}
	driver, blas = filepath.Join(dir, "libcuda.so.1"), filepath.Join(dir, "libcublas.so.13")
	for _, lib := range [][2]string{{driver, "fakecuda.cpp"}, {blas, "fakecublas.cpp"}} {
		args := append(append([]string{}, flags...), "-o", lib[0], filepath.Join(src, lib[1]))
		if out, err := exec.Command(gxx, args...).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("g++ %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return driver, blas, nil
}

// Rerun builds the emulator and runs the tests of this test binary that match run in a child
// process with env (name=value entries) added, after the emulator's libraries (driverEnv=driver
// library, blasEnv=cuBLAS library). It logs the child's output and fails t unless the child passed
// at least one test whose name starts with TestCUDA and failed or skipped none. Without g++ it
// skips t, naming why.
func Rerun(t *testing.T, run, driverEnv, blasEnv string, env ...string) {
	t.Helper()
	driver, blas, err := Build(t.TempDir())
	if err != nil {
		if _, lookErr := exec.LookPath("g++"); lookErr != nil {
			t.Skipf("not run: %v", err)
		}
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", run, "-test.v", "-test.count", "1", "-test.timeout", "40m")
	cmd.Env = append(append(os.Environ(), driverEnv+"="+driver, blasEnv+"="+blas, EnvEmulated+"=1"), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the CUDA tests failed on the host emulator: %v", err)
	}
	passed := regexp.MustCompile(`(?m)^--- PASS: TestCUDA`).FindAll(out, -1)
	if len(passed) == 0 || regexp.MustCompile(`(?m)^\s*--- (FAIL|SKIP)`).Match(out) {
		t.Fatalf("the emulated run passed %d CUDA tests and failed or skipped others", len(passed))
	}
}
