package mpi

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// LibEnv names the environment variable that points to the MPI library, for an
// installation outside the loader's search path.
const LibEnv = "MAMBA_MPI_LIB"

// MaxCall is the most bytes a caller should move in one collective call: Open MPI's
// shared-memory transport slows down by 10-50× on single calls of tens of megabytes
// (../shared/notes/go-ecosystem.md §6), so larger buffers go in pieces of this size.
const MaxCall = 4 << 20

// Elem is an element type that MPI moves: float32 (MPI_FLOAT), float64 (MPI_DOUBLE)
// or byte (MPI_BYTE).
type Elem interface{ float32 | float64 | byte }

// World is MPI_COMM_WORLD of an initialised MPI library. Every MPI call runs on one
// goroutine locked to the OS thread that called MPI_Init_thread (MPI_THREAD_FUNNELED);
// World's methods hand their call to it and wait, so they may be called from any
// goroutine, one call at a time per goroutine. A World must be ended with Finalize
// (or Abort).
type World struct {
	rank, size int

	mu    sync.Mutex // one call in flight
	c     call       // the call in flight
	calls chan *call // to the MPI goroutine
	fn    funcs
}

// call is one MPI function call with its raw arguments, run on the MPI goroutine.
// mem holds the buffers its arguments point to: storing them in the World (on the
// heap) makes them escape, so no buffer lives on a goroutine stack that could move
// during the call, and keeps them alive until it returns.
type call struct {
	fn   uintptr
	args [7]uintptr
	n    int
	mem  [2]unsafe.Pointer
	rc   uintptr
	done chan struct{}
}

// funcs holds the library's entry points and the handles of its predefined objects
// (Open MPI's handles are the addresses of exported globals).
type funcs struct {
	initThread, commRank, commSize, barrier, bcast, allgather, alltoall, abort, finalize uintptr
	comm, float, double, byte                                                            uintptr
}

// yieldEnv is Open MPI's setting for waiting calls: spin (0) or yield the core (1).
const yieldEnv = "OMPI_MCA_mpi_yield_when_idle"

// Constants of Open MPI's mpi.h.
const (
	threadFunneled = 1
	inPlace        = 1 // MPI_IN_PLACE is (void*)1 in Open MPI
)

// Init loads the MPI library (LibEnv, else libmpi.so.40, else libmpi.so) and
// initialises it for the launch l. Its error names the library and how to point to it.
func Init(l Launch) (*World, error) {
	f, err := load()
	if err != nil {
		return nil, fmt.Errorf("%s started %s, but the MPI library cannot be loaded (%v): install Open MPI's libmpi.so.40 (Debian: libopenmpi3) or set %s to its path", l.By, ranks(l.Size), err, LibEnv)
	}
	// The calls of a data-parallel run overlap computation that keeps every core
	// busy: an MPI call waiting for a peer yields its core rather than spinning on it.
	if _, set := os.LookupEnv(yieldEnv); !set {
		os.Setenv(yieldEnv, "1")
	}
	w := &World{calls: make(chan *call), fn: f}
	w.c.done = make(chan struct{}, 1)
	started := make(chan error)
	go w.serve(started)
	if err := <-started; err != nil {
		return nil, err
	}
	var rank, size int32
	w.do(f.commRank, mem(&rank, nil), f.comm, uintptr(unsafe.Pointer(&rank)))
	w.do(f.commSize, mem(&size, nil), f.comm, uintptr(unsafe.Pointer(&size)))
	w.rank, w.size = int(rank), int(size)
	return w, nil
}

func ranks(n int) string {
	if n == 0 {
		return "this process as an MPI rank"
	}
	return fmt.Sprintf("%d ranks", n)
}

func load() (funcs, error) {
	names := []string{"libmpi.so.40", "libmpi.so"}
	if p := os.Getenv(LibEnv); p != "" {
		names = []string{p}
	}
	var lib uintptr
	var err error
	name := ""
	for _, name = range names {
		// RTLD_GLOBAL: Open MPI's plugins resolve their symbols against libmpi.
		if lib, err = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
			break
		}
	}
	if err != nil {
		return funcs{}, err
	}
	var f funcs
	for _, s := range []struct {
		p    *uintptr
		name string
	}{
		{&f.initThread, "MPI_Init_thread"}, {&f.commRank, "MPI_Comm_rank"}, {&f.commSize, "MPI_Comm_size"},
		{&f.barrier, "MPI_Barrier"}, {&f.bcast, "MPI_Bcast"}, {&f.allgather, "MPI_Allgather"},
		{&f.alltoall, "MPI_Alltoall"}, {&f.abort, "MPI_Abort"}, {&f.finalize, "MPI_Finalize"},
		{&f.comm, "ompi_mpi_comm_world"}, {&f.float, "ompi_mpi_float"}, {&f.double, "ompi_mpi_double"}, {&f.byte, "ompi_mpi_byte"},
	} {
		if *s.p, err = purego.Dlsym(lib, s.name); err != nil {
			return funcs{}, fmt.Errorf("%s is not Open MPI's library: %v", name, err)
		}
	}
	return f, nil
}

// serve is the MPI goroutine: it locks its thread, initialises MPI on it and runs
// calls until Finalize.
func (w *World) serve(started chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	var provided int32
	if rc, _, _ := purego.SyscallN(w.fn.initThread, 0, 0, threadFunneled, uintptr(unsafe.Pointer(&provided))); rc != 0 {
		started <- fmt.Errorf("MPI_Init_thread failed with code %d", rc)
		return
	}
	if provided < threadFunneled {
		started <- fmt.Errorf("the MPI library provides thread level %d, below MPI_THREAD_FUNNELED", provided)
		return
	}
	started <- nil
	for c := range w.calls {
		c.rc, _, _ = purego.SyscallN(c.fn, c.args[:c.n]...)
		c.done <- struct{}{}
	}
}

// do runs fn(args...) on the MPI goroutine and returns its result code; m holds
// the memory that args point to.
func (w *World) do(fn uintptr, m [2]unsafe.Pointer, args ...uintptr) uintptr {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.c.fn, w.c.n, w.c.mem = fn, copy(w.c.args[:], args), m
	w.calls <- &w.c
	<-w.c.done
	w.c.mem = [2]unsafe.Pointer{}
	return w.c.rc
}

// mem lists the memory of a call's pointer arguments (nil: none).
func mem[P any](a, b *P) [2]unsafe.Pointer {
	return [2]unsafe.Pointer{unsafe.Pointer(a), unsafe.Pointer(b)}
}

// first returns &s[0], or nil for an empty slice.
func first[T Elem](s []T) *T {
	if len(s) == 0 {
		return nil
	}
	return &s[0]
}

// Rank returns this process's rank, 0 ≤ Rank < Size.
func (w *World) Rank() int { return w.rank }

// Size returns the number of ranks.
func (w *World) Size() int { return w.size }

var errCall = errors.New("mpi: call failed")

func check(name string, rc uintptr) error {
	if rc != 0 {
		return fmt.Errorf("%w: %s returned %d", errCall, name, rc)
	}
	return nil
}

// Barrier returns when every rank has called it.
func (w *World) Barrier() error {
	return check("MPI_Barrier", w.do(w.fn.barrier, [2]unsafe.Pointer{}, w.fn.comm))
}

// dtype returns the MPI datatype handle of T.
func dtype[T Elem](f *funcs) uintptr {
	var z T
	switch any(z).(type) {
	case float32:
		return f.float
	case float64:
		return f.double
	}
	return f.byte
}

// Bcast copies buf of rank root into buf of every other rank, in pieces of at most
// MaxCall bytes. buf has the same length on every rank.
func Bcast[T Elem](w *World, buf []T, root int) error {
	var z T
	step := MaxCall / int(unsafe.Sizeof(z))
	for lo := 0; lo < len(buf); lo += step {
		p := first(buf[lo:min(lo+step, len(buf))])
		rc := w.do(w.fn.bcast, mem(p, nil), uintptr(unsafe.Pointer(p)), uintptr(min(step, len(buf)-lo)), dtype[T](&w.fn), uintptr(root), w.fn.comm)
		if err := check("MPI_Bcast", rc); err != nil {
			return err
		}
	}
	return nil
}

// Allgather concatenates the blocks of all ranks in rank order: recv[q·n:(q+1)·n] =
// block of rank q, n = len(recv)/Size. A nil send means the block is already in
// place in recv (MPI_IN_PLACE); otherwise len(send) = n. One call: keep
// len(recv) within MaxCall bytes.
func Allgather[T Elem](w *World, send, recv []T) error {
	n := len(recv) / w.size
	s, r := first(send), first(recv)
	sp := uintptr(unsafe.Pointer(s))
	if send == nil {
		sp = inPlace
	} else if len(send) != n {
		return fmt.Errorf("mpi: Allgather of %d elements into %d blocks of %d", len(send), w.size, n)
	}
	t := dtype[T](&w.fn)
	return check("MPI_Allgather", w.do(w.fn.allgather, mem(s, r), sp, uintptr(n), t, uintptr(unsafe.Pointer(r)), uintptr(n), t, w.fn.comm))
}

// Alltoall exchanges blocks: block q of send goes to rank q, and block q of recv
// comes from rank q (n = len(send)/Size elements each). One call: keep len(send)
// within MaxCall bytes.
func Alltoall[T Elem](w *World, send, recv []T) error {
	n := len(send) / w.size
	if len(recv) != len(send) {
		return fmt.Errorf("mpi: Alltoall with %d elements to send and %d to receive", len(send), len(recv))
	}
	t := dtype[T](&w.fn)
	s, r := first(send), first(recv)
	return check("MPI_Alltoall", w.do(w.fn.alltoall, mem(s, r), uintptr(unsafe.Pointer(s)), uintptr(n), t, uintptr(unsafe.Pointer(r)), uintptr(n), t, w.fn.comm))
}

// Abort ends every process of the job with exit status code (MPI_Abort). It does not return.
func (w *World) Abort(code int) {
	w.do(w.fn.abort, [2]unsafe.Pointer{}, w.fn.comm, uintptr(code))
	os.Exit(code) // MPI_Abort returns only if it could not abort
}

// Finalize shuts MPI down; the World cannot be used afterwards.
func (w *World) Finalize() error {
	err := check("MPI_Finalize", w.do(w.fn.finalize, [2]unsafe.Pointer{}))
	close(w.calls)
	return err
}
