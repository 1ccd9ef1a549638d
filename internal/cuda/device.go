package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Attributes of the device that the package reads (CUdevice_attribute).
const (
	attrMaxThreadsPerBlock = 1
	attrMultiprocessors    = 16
	attrMemoryClockKHz     = 36
	attrMemoryBusWidth     = 37
	attrL2Bytes            = 38
	attrCCMajor            = 75
	attrCCMinor            = 76
	attrSharedOptin        = 97

	errNoDevice    = 100 // CUDA_ERROR_NO_DEVICE
	errStubLibrary = 34  // CUDA_ERROR_STUB_LIBRARY

	funcAttrMaxDynamicShared = 8 // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
	streamNonBlocking        = 1 // CU_STREAM_NON_BLOCKING
	captureRelaxed           = 2 // CU_STREAM_CAPTURE_MODE_RELAXED
)

// Info describes the device Open chose.
type Info struct {
	Ordinal         int
	Name            string
	Major, Minor    int // compute capability
	Multiprocessors int
	MemoryBytes     int64
	L2Bytes         int
	SharedOptin     int     // largest shared memory a block may ask for, in bytes
	PeakBandwidth   float64 // bytes/s from the memory clock and bus width (datasheet-like, double data rate)
	DriverVersion   int     // e.g. 13000 for CUDA 13.0
	DriverPath      string
	BLASPath        string
	BLASVersion     int
	Image           string // "cubin sm_90" or "ptx": which embedded form of the kernels the driver took
}

// Device is one GPU: its primary context, one stream that every call of the package is ordered on,
// the package's kernels and a cuBLAS handle bound to that stream. Work is asynchronous: errors of a
// kernel surface at the next Sync (or at once with SyncEach). A Device is not safe for concurrent
// use; it may be used from any goroutine (every call makes the context current on its thread).
type Device struct {
	api     *driverAPI
	blas    *blasAPI
	info    Info
	dev     int32
	ctx     uintptr
	stream  uintptr
	module  uintptr
	fn      map[string]uintptr
	smem    map[uintptr]int // dynamic shared memory each function is allowed beyond 48 KB
	handle  uintptr         // cuBLAS
	argv    [1]uintptr      // the kernel parameter pointer handed to cuLaunchKernel
	alpha   [2]float32      // GEMM scalars, read by cuBLAS from host memory during the call
	scratch eltParams       // parameters of the Device-level conversions
	allocd  int64
	math    Math  // the cuBLAS handle's math mode
	err     error // the first failure of a kernel.Kernel adapter (Err)
	closed  bool

	// SyncEach makes every launch wait for the kernel and report its error (for tests and debugging).
	SyncEach bool
}

var (
	driverOnce = sync.OnceValues(func() (*driverAPI, error) {
		return loadDriver(candidates(EnvDriverLib, driverNames, driverDirs, os.Getenv, filepath.Glob))
	})
	blasOnce = sync.OnceValues(func() (*blasAPI, error) {
		return loadBLAS(candidates(EnvBLASLib, blasNames, blasDirGlobs, os.Getenv, filepath.Glob))
	})
)

// Open initialises the driver and returns device ordinal (0 = the first GPU). Errors wrap
// ErrNoDriver (no libcuda.so.1), ErrNoDevice (a driver but no usable GPU) or ErrNoBLAS (no cuBLAS),
// or are an *Error naming the failed call.
func Open(ordinal int) (*Device, error) {
	api, err := driverOnce()
	if err != nil {
		return nil, err
	}
	if r := call(api.cuInit, 0); r != 0 {
		err := api.check("cuInit", r)
		if r == errStubLibrary {
			return nil, fmt.Errorf("%w (%s is the toolkit's stub, not the driver: %s)", ErrNoDriver, api.path, bare(err))
		}
		return nil, fmt.Errorf("%w (%s)", ErrNoDevice, bare(err))
	}
	var n int32
	if err := api.check("cuDeviceGetCount", call(api.cuDeviceGetCount, uintptr(unsafe.Pointer(&n)))); err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrNoDevice, bare(err))
	}
	if n == 0 {
		return nil, fmt.Errorf("%w (the driver sees no device)", ErrNoDevice)
	}
	if ordinal < 0 || ordinal >= int(n) {
		return nil, fmt.Errorf("cuda: device %d does not exist (%d found)", ordinal, n)
	}
	blas, err := blasOnce()
	if err != nil {
		return nil, err
	}
	d := &Device{api: api, blas: blas, fn: map[string]uintptr{}, smem: map[uintptr]int{}}
	d.info.Ordinal, d.info.DriverPath, d.info.BLASPath = ordinal, api.path, blas.path
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.init(ordinal); err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

func (d *Device) init(ordinal int) error {
	a := d.api
	var v int32
	if err := a.check("cuDriverGetVersion", call(a.cuDriverGetVersion, uintptr(unsafe.Pointer(&v)))); err != nil {
		return err
	}
	d.info.DriverVersion = int(v)
	if err := a.check("cuDeviceGet", call(a.cuDeviceGet, uintptr(unsafe.Pointer(&d.dev)), uintptr(ordinal))); err != nil {
		return err
	}
	name := make([]byte, 256)
	if err := a.check("cuDeviceGetName", call(a.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), uintptr(d.dev))); err != nil {
		return err
	}
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	d.info.Name = string(name)
	attrs := map[int]*int{attrMultiprocessors: &d.info.Multiprocessors, attrCCMajor: &d.info.Major, attrCCMinor: &d.info.Minor,
		attrL2Bytes: &d.info.L2Bytes, attrSharedOptin: &d.info.SharedOptin}
	var clock, bus int
	attrs[attrMemoryClockKHz], attrs[attrMemoryBusWidth] = &clock, &bus
	for attr, dst := range attrs {
		var x int32
		if err := a.check("cuDeviceGetAttribute", call(a.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&x)), uintptr(attr), uintptr(d.dev))); err != nil {
			return err
		}
		*dst = int(x)
	}
	d.info.PeakBandwidth = 2 * float64(clock) * 1e3 * float64(bus) / 8
	var mem uint64
	if err := a.check("cuDeviceTotalMem", call(a.cuDeviceTotalMem, uintptr(unsafe.Pointer(&mem)), uintptr(d.dev))); err != nil {
		return err
	}
	d.info.MemoryBytes = int64(mem)
	if err := a.check("cuDevicePrimaryCtxRetain", call(a.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&d.ctx)), uintptr(d.dev))); err != nil {
		return err
	}
	if err := a.check("cuCtxSetCurrent", call(a.cuCtxSetCurrent, d.ctx)); err != nil {
		return err
	}
	if err := a.check("cuStreamCreate", call(a.cuStreamCreate, uintptr(unsafe.Pointer(&d.stream)), streamNonBlocking)); err != nil {
		return err
	}
	if err := d.loadModule(); err != nil {
		return err
	}
	b := d.blas
	if err := b.check("cublasCreate_v2", call(b.cublasCreate, uintptr(unsafe.Pointer(&d.handle)))); err != nil {
		return err
	}
	if err := b.check("cublasSetStream_v2", call(b.cublasSetStream, d.handle, d.stream)); err != nil {
		return err
	}
	var bv int32
	if err := b.check("cublasGetVersion_v2", call(b.cublasGetVersion, d.handle, uintptr(unsafe.Pointer(&bv)))); err != nil {
		return err
	}
	d.info.BLASVersion = int(bv)
	return nil
}

// release frees what init made, in reverse order, ignoring errors (the context may be broken).
func (d *Device) release() {
	a := d.api
	if d.handle != 0 {
		call(d.blas.cublasDestroy, d.handle)
	}
	if d.module != 0 {
		call(a.cuModuleUnload, d.module)
	}
	if d.stream != 0 {
		call(a.cuStreamDestroy, d.stream)
	}
	if d.ctx != 0 {
		call(a.cuDevicePrimaryCtxRelease, uintptr(d.dev))
	}
	d.handle, d.module, d.stream, d.ctx = 0, 0, 0, 0
}

// Close waits for the device's work, then releases the stream, kernels, cuBLAS handle and the
// context. Buffers not freed are freed with the context when no other user holds it.
func (d *Device) Close() error {
	if d.closed {
		return nil
	}
	err := d.Sync()
	d.enter()
	d.release()
	d.exit()
	d.closed = true
	return err
}

// bare is err's text without the package prefix, for wrapping under another "cuda:" error.
func bare(err error) string { return strings.TrimPrefix(err.Error(), "cuda: ") }

// Info describes the device.
func (d *Device) Info() Info { return d.info }

// enter makes the device's context current on this goroutine's thread until exit.
func (d *Device) enter() error {
	runtime.LockOSThread()
	if d.closed {
		return errors.New("cuda: device is closed")
	}
	return d.api.check("cuCtxSetCurrent", call(d.api.cuCtxSetCurrent, d.ctx))
}

func (d *Device) exit() { runtime.UnlockOSThread() }

// Sync waits until the device has finished all work issued so far and reports the first error
// of a kernel (which leaves the context unusable: CUDA errors in kernels are sticky), or else Err.
func (d *Device) Sync() error {
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	return firstErr(d.api.check("cuStreamSynchronize", call(d.api.cuStreamSynchronize, d.stream)), d.err)
}

// Err returns the first error that a kernel of a Backend met (kernel.Kernel's methods return none:
// a failed launch is kept here, and the work issued after it is not to be trusted), or nil.
func (d *Device) Err() error { return d.err }

// fail keeps the first non-nil err for Err.
func (d *Device) fail(err error) {
	if err != nil && d.err == nil {
		d.err = err
	}
}

// MemInfo returns the device memory free and in total, and what this Device allocated.
func (d *Device) MemInfo() (free, total, allocated int64, err error) {
	if err := d.enter(); err != nil {
		d.exit()
		return 0, 0, 0, err
	}
	defer d.exit()
	var f, t uint64
	err = d.api.check("cuMemGetInfo", call(d.api.cuMemGetInfo, uintptr(unsafe.Pointer(&f)), uintptr(unsafe.Pointer(&t))))
	return int64(f), int64(t), d.allocd, err
}

// dim3 is a grid or block size.
type dim3 struct{ x, y, z int }

// launch starts kernel f with the parameter struct at params (the kernel's one argument) on the
// device's stream. The caller has entered the context.
func (d *Device) launch(name string, f uintptr, grid, block dim3, smem int, params unsafe.Pointer) error {
	if grid.y == 0 {
		grid.y = 1
	}
	if grid.z == 0 {
		grid.z = 1
	}
	if block.y == 0 {
		block.y = 1
	}
	if block.z == 0 {
		block.z = 1
	}
	if grid.x < 1 || grid.x > 1<<31-1 || grid.y > 65535 || grid.z > 65535 || block.x*block.y*block.z > 1024 {
		return fmt.Errorf("cuda: %s: launch grid %v block %v out of range", name, grid, block)
	}
	d.argv[0] = uintptr(params)
	r := call(d.api.cuLaunchKernel, f, uintptr(grid.x), uintptr(grid.y), uintptr(grid.z), uintptr(block.x), uintptr(block.y),
		uintptr(block.z), uintptr(smem), d.stream, uintptr(unsafe.Pointer(&d.argv[0])), 0)
	runtime.KeepAlive(params)
	if err := d.api.check("cuLaunchKernel("+name+")", r); err != nil {
		return err
	}
	if d.SyncEach {
		return d.api.check("cuStreamSynchronize after "+name, call(d.api.cuStreamSynchronize, d.stream))
	}
	return nil
}

// allowShared raises f's dynamic shared memory limit to bytes when that is above the default 48 KB.
func (d *Device) allowShared(name string, f uintptr, bytes int) error {
	if bytes <= 48<<10 || d.smem[f] >= bytes {
		return nil
	}
	if bytes > d.info.SharedOptin {
		return fmt.Errorf("cuda: %s needs %d bytes of shared memory, the device allows %d", name, bytes, d.info.SharedOptin)
	}
	if err := d.api.check("cuFuncSetAttribute("+name+")", call(d.api.cuFuncSetAttribute, f, funcAttrMaxDynamicShared, uintptr(bytes))); err != nil {
		return err
	}
	d.smem[f] = bytes
	return nil
}

// Event marks a point in the device's stream, for timing.
type Event struct {
	d  *Device
	ev uintptr
}

// NewEvent returns an event with timing enabled.
func (d *Device) NewEvent() (*Event, error) {
	if err := d.enter(); err != nil {
		d.exit()
		return nil, err
	}
	defer d.exit()
	e := &Event{d: d}
	if err := d.api.check("cuEventCreate", call(d.api.cuEventCreate, uintptr(unsafe.Pointer(&e.ev)), 0)); err != nil {
		return nil, err
	}
	return e, nil
}

// Record marks the current end of the device's stream.
func (e *Event) Record() error {
	d := e.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	return d.api.check("cuEventRecord", call(d.api.cuEventRecord, e.ev, d.stream))
}

// Since waits for e and returns the milliseconds between start and e.
func (e *Event) Since(start *Event) (float64, error) {
	d := e.d
	if err := d.enter(); err != nil {
		d.exit()
		return 0, err
	}
	defer d.exit()
	if err := d.api.check("cuEventSynchronize", call(d.api.cuEventSynchronize, e.ev)); err != nil {
		return 0, err
	}
	var ms float32
	err := d.api.check("cuEventElapsedTime", call(d.api.cuEventElapsedTime, uintptr(unsafe.Pointer(&ms)), start.ev, e.ev))
	return float64(ms), err
}

// Close destroys the event.
func (e *Event) Close() error {
	d := e.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	return d.api.check("cuEventDestroy", call(d.api.cuEventDestroy, e.ev))
}

// Graph is a captured sequence of the device's work, replayed by Launch with one call.
type Graph struct {
	d           *Device
	graph, exec uintptr
}

// BeginCapture starts recording the work issued on the device's stream into a graph instead of
// running it; EndCapture returns the graph. Allocations and copies to or from the host must not
// happen in between.
func (d *Device) BeginCapture() error {
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	return d.api.check("cuStreamBeginCapture", call(d.api.cuStreamBeginCapture, d.stream, captureRelaxed))
}

// EndCapture ends the recording started by BeginCapture and instantiates the graph.
func (d *Device) EndCapture() (*Graph, error) {
	if err := d.enter(); err != nil {
		d.exit()
		return nil, err
	}
	defer d.exit()
	g := &Graph{d: d}
	if err := d.api.check("cuStreamEndCapture", call(d.api.cuStreamEndCapture, d.stream, uintptr(unsafe.Pointer(&g.graph)))); err != nil {
		return nil, err
	}
	if err := d.api.check("cuGraphInstantiateWithFlags", call(d.api.cuGraphInstantiate, uintptr(unsafe.Pointer(&g.exec)), g.graph, 0)); err != nil {
		call(d.api.cuGraphDestroy, g.graph)
		return nil, err
	}
	return g, nil
}

// Launch replays the graph on the device's stream.
func (g *Graph) Launch() error {
	d := g.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	return d.api.check("cuGraphLaunch", call(d.api.cuGraphLaunch, g.exec, d.stream))
}

// Close frees the graph.
func (g *Graph) Close() error {
	d := g.d
	if err := d.enter(); err != nil {
		d.exit()
		return err
	}
	defer d.exit()
	err := d.api.check("cuGraphExecDestroy", call(d.api.cuGraphExecDestroy, g.exec))
	return errors.Join(err, d.api.check("cuGraphDestroy", call(d.api.cuGraphDestroy, g.graph)))
}
