package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebitengine/purego"
)

// Environment variables that point at the libraries when they are not where the loader and the
// usual places would find them. Each may name the library file or the folder holding it.
const (
	EnvDriverLib = "MAMBA_CUDA_LIB"   // libcuda.so.1, the NVIDIA driver's user-space library
	EnvBLASLib   = "MAMBA_CUBLAS_LIB" // libcublas.so.13 or .12 (with libcublasLt beside it)
)

// ErrNoDriver means that libcuda.so.1 could not be loaded; ErrNoDevice that the driver is there but
// reports no usable GPU. Open's errors wrap them, so callers can tell a machine without CUDA
// (errors.Is) from a failure of a CUDA call.
var (
	ErrNoDriver = errors.New("cuda: no NVIDIA driver")
	ErrNoDevice = errors.New("cuda: no GPU")
	ErrNoBLAS   = errors.New("cuda: no cuBLAS")
)

var (
	driverNames = []string{"libcuda.so.1", "libcuda.so"}
	// driverDirs are searched when the dynamic loader's own search fails: container mounts of the
	// driver, the distributions' library folders, WSL and NixOS.
	driverDirs = []string{"/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu",
		"/usr/lib64", "/usr/lib", "/usr/lib/wsl/lib", "/run/opengl-driver/lib"}
	blasNames = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11"}
	// blasDirGlobs are the CUDA toolkit's folders and those of the nvidia-cublas Python wheels
	// (CUDA 13 wheels put every library in nvidia/cu13/lib, CUDA 12 ones in nvidia/cublas/lib).
	blasDirGlobs = []string{"$CUDA_HOME/lib64", "$CUDA_PATH/lib64", "/usr/local/cuda/lib64",
		"/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda-*/lib64", "/usr/lib/x86_64-linux-gnu",
		"$VIRTUAL_ENV/lib/python3*/site-packages/nvidia/*/lib", "/opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib",
		"/opt/*/lib/python3*/site-packages/nvidia/*/lib", "/usr/local/lib/python3*/*-packages/nvidia/*/lib",
		"/usr/lib/python3*/*-packages/nvidia/*/lib", "$HOME/.local/lib/python3*/site-packages/nvidia/*/lib"}
)

// candidates lists the paths to try for a library: the environment variable's file (or the names
// inside its folder) alone when it is set; else the bare names (the dynamic loader's search), then
// the names in each folder of dirs that exists. getenv and glob are os.Getenv and filepath.Glob
// except in tests.
func candidates(env string, names, dirGlobs []string, getenv func(string) string, glob func(string) ([]string, error)) []string {
	if v := getenv(env); v != "" {
		if strings.HasSuffix(v, "/") || !strings.Contains(filepath.Base(v), ".so") {
			out := make([]string, len(names))
			for i, n := range names {
				out[i] = filepath.Join(v, n)
			}
			return out
		}
		return []string{v}
	}
	out := append([]string(nil), names...)
	seen := map[string]bool{}
	for _, pattern := range dirGlobs {
		unset := false
		p := os.Expand(pattern, func(k string) string {
			v := getenv(k)
			unset = unset || v == ""
			return v
		})
		if unset {
			continue // "$CUDA_HOME/lib64" with CUDA_HOME unset would be "/lib64"
		}
		dirs, err := glob(p)
		if err != nil {
			continue
		}
		for _, d := range dirs {
			if seen[d] {
				continue
			}
			seen[d] = true
			for _, n := range names {
				out = append(out, filepath.Join(d, n))
			}
		}
	}
	return out
}

// dlopen tries each path in order and returns the first library that loads, or an error that
// lists what was tried and the last loader message.
func dlopen(paths []string) (uintptr, string, error) {
	var last error
	for _, p := range paths {
		if strings.Contains(p, "/") {
			if _, err := os.Stat(p); err != nil {
				last = err
				continue
			}
			// A library loaded by path finds its own dependencies only through its RUNPATH; load
			// cuBLASLt from the same folder first so that libcublas finds it already loaded.
			if base := filepath.Base(p); strings.HasPrefix(base, "libcublas.so.") {
				lt := filepath.Join(filepath.Dir(p), strings.Replace(base, "libcublas.", "libcublasLt.", 1))
				if _, err := os.Stat(lt); err == nil {
					_, _ = purego.Dlopen(lt, purego.RTLD_NOW|purego.RTLD_GLOBAL)
				}
			}
		}
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, p, nil
		}
		last = err
	}
	return 0, "", fmt.Errorf("tried %d paths, last: %v", len(paths), last)
}

// symbols resolves each name of syms in lib into the uintptr it points to.
func symbols(lib uintptr, syms map[string]*uintptr) error {
	for name, p := range syms {
		s, err := purego.Dlsym(lib, name)
		if err != nil {
			return fmt.Errorf("symbol %s: %w", name, err)
		}
		*p = s
	}
	return nil
}

// driverAPI holds the entry points of libcuda.so.1 the package calls.
type driverAPI struct {
	path string
	cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute,
	cuDeviceTotalMem, cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxSynchronize,
	cuMemAlloc, cuMemFree, cuMemGetInfo, cuMemsetD32Async, cuMemsetD8Async, cuMemcpyHtoDAsync, cuMemcpyDtoHAsync,
	cuMemcpyDtoDAsync, cuStreamCreate, cuStreamDestroy, cuStreamSynchronize, cuModuleLoadData, cuModuleUnload,
	cuModuleGetFunction, cuFuncSetAttribute, cuLaunchKernel, cuEventCreate, cuEventRecord, cuEventSynchronize,
	cuEventElapsedTime, cuEventDestroy, cuGetErrorName, cuGetErrorString, cuStreamBeginCapture,
	cuStreamEndCapture, cuGraphInstantiate, cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy uintptr
}

func loadDriver(paths []string) (*driverAPI, error) {
	lib, path, err := dlopen(paths)
	if err != nil {
		return nil, fmt.Errorf("%w (libcuda.so.1 not found: %v; set %s to its path)", ErrNoDriver, err, EnvDriverLib)
	}
	a := &driverAPI{path: path}
	err = symbols(lib, map[string]*uintptr{
		"cuInit": &a.cuInit, "cuDriverGetVersion": &a.cuDriverGetVersion, "cuDeviceGetCount": &a.cuDeviceGetCount,
		"cuDeviceGet": &a.cuDeviceGet, "cuDeviceGetName": &a.cuDeviceGetName, "cuDeviceGetAttribute": &a.cuDeviceGetAttribute,
		"cuDeviceTotalMem_v2": &a.cuDeviceTotalMem, "cuDevicePrimaryCtxRetain": &a.cuDevicePrimaryCtxRetain,
		"cuDevicePrimaryCtxRelease_v2": &a.cuDevicePrimaryCtxRelease, "cuCtxSetCurrent": &a.cuCtxSetCurrent,
		"cuCtxSynchronize": &a.cuCtxSynchronize, "cuMemAlloc_v2": &a.cuMemAlloc, "cuMemFree_v2": &a.cuMemFree,
		"cuMemGetInfo_v2": &a.cuMemGetInfo, "cuMemsetD32Async": &a.cuMemsetD32Async, "cuMemsetD8Async": &a.cuMemsetD8Async,
		"cuMemcpyHtoDAsync_v2": &a.cuMemcpyHtoDAsync, "cuMemcpyDtoHAsync_v2": &a.cuMemcpyDtoHAsync,
		"cuMemcpyDtoDAsync_v2": &a.cuMemcpyDtoDAsync, "cuStreamCreate": &a.cuStreamCreate,
		"cuStreamDestroy_v2": &a.cuStreamDestroy, "cuStreamSynchronize": &a.cuStreamSynchronize,
		"cuModuleLoadData": &a.cuModuleLoadData, "cuModuleUnload": &a.cuModuleUnload,
		"cuModuleGetFunction": &a.cuModuleGetFunction, "cuFuncSetAttribute": &a.cuFuncSetAttribute,
		"cuLaunchKernel": &a.cuLaunchKernel, "cuEventCreate": &a.cuEventCreate, "cuEventRecord": &a.cuEventRecord,
		"cuEventSynchronize": &a.cuEventSynchronize, "cuEventElapsedTime": &a.cuEventElapsedTime,
		"cuEventDestroy_v2": &a.cuEventDestroy, "cuGetErrorName": &a.cuGetErrorName, "cuGetErrorString": &a.cuGetErrorString,
		"cuStreamBeginCapture_v2": &a.cuStreamBeginCapture, "cuStreamEndCapture": &a.cuStreamEndCapture,
		"cuGraphInstantiateWithFlags": &a.cuGraphInstantiate, "cuGraphLaunch": &a.cuGraphLaunch,
		"cuGraphExecDestroy": &a.cuGraphExecDestroy, "cuGraphDestroy": &a.cuGraphDestroy,
	})
	if err != nil {
		return nil, fmt.Errorf("%w (%s is too old, need CUDA 12 or later: %v)", ErrNoDriver, path, err)
	}
	return a, nil
}

// blasAPI holds the entry points of cuBLAS the package calls.
type blasAPI struct {
	path string
	cublasCreate, cublasDestroy, cublasSetStream, cublasSetMathMode, cublasGetVersion, cublasSgemm,
	cublasGemmEx uintptr
	statusName func(int32) string // cublasGetStatusName, optional (cuBLAS ≥ 11.4.2)
}

func loadBLAS(paths []string) (*blasAPI, error) {
	lib, path, err := dlopen(paths)
	if err != nil {
		return nil, fmt.Errorf("%w (libcublas.so.13, .12 or .11 not found: %v; set %s to its path)", ErrNoBLAS, err, EnvBLASLib)
	}
	a := &blasAPI{path: path}
	err = symbols(lib, map[string]*uintptr{
		"cublasCreate_v2": &a.cublasCreate, "cublasDestroy_v2": &a.cublasDestroy, "cublasSetStream_v2": &a.cublasSetStream,
		"cublasSetMathMode": &a.cublasSetMathMode, "cublasGetVersion_v2": &a.cublasGetVersion, "cublasSgemm_v2": &a.cublasSgemm,
		"cublasGemmEx": &a.cublasGemmEx,
	})
	if err != nil {
		return nil, fmt.Errorf("%w (%s: %v)", ErrNoBLAS, path, err)
	}
	if s, err := purego.Dlsym(lib, "cublasGetStatusName"); err == nil {
		purego.RegisterFunc(&a.statusName, s)
	}
	return a, nil
}
