package cuda

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Error is a failed CUDA driver or cuBLAS call: the call's name, the library's result code and its
// name (CUDA_ERROR_OUT_OF_MEMORY, CUBLAS_STATUS_INVALID_VALUE, …).
type Error struct {
	Call string
	Code int
	Name string
	Desc string
}

func (e *Error) Error() string {
	if e.Desc != "" {
		return fmt.Sprintf("cuda: %s: %s (%s)", e.Call, e.Name, e.Desc)
	}
	return fmt.Sprintf("cuda: %s: %s", e.Call, e.Name)
}

// call invokes the C function fn with integer and pointer arguments and returns its int result.
func call(fn uintptr, args ...uintptr) int32 {
	r, _, _ := purego.SyscallN(fn, args...)
	return int32(r)
}

// cstring copies the NUL-terminated C string at p (memory the library owns).
func cstring(p *byte) string {
	if p == nil {
		return ""
	}
	var b []byte
	for i := 0; i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// check turns a CUresult into nil or an *Error naming the call.
func (a *driverAPI) check(callName string, r int32) error {
	if r == 0 {
		return nil
	}
	var name, desc *byte
	e := &Error{Call: callName, Code: int(r), Name: fmt.Sprintf("CUresult %d", r)}
	if call(a.cuGetErrorName, uintptr(r), uintptr(unsafe.Pointer(&name))) == 0 {
		e.Name = cstring(name)
	}
	if call(a.cuGetErrorString, uintptr(r), uintptr(unsafe.Pointer(&desc))) == 0 {
		e.Desc = cstring(desc)
	}
	return e
}

// blasStatus names cuBLAS's status codes (cublas_api.h).
var blasStatus = map[int32]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
	8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func (a *blasAPI) check(callName string, r int32) error {
	if r == 0 {
		return nil
	}
	e := &Error{Call: callName, Code: int(r), Name: blasStatus[r]}
	if a.statusName != nil {
		if s := a.statusName(r); s != "" {
			e.Name = s
		}
	}
	if e.Name == "" {
		e.Name = fmt.Sprintf("cublasStatus %d", r)
	}
	return e
}
