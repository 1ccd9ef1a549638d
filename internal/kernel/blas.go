package kernel

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/cpu"
)

// BLASInfo says which library the float32 products run on.
type BLASInfo struct {
	Lib     string // "openblas" or "gonum" (pure Go, when OpenBLAS is not installed)
	Core    string // OpenBLAS's kernel, as openblas_get_corename names it
	Note    string // how the kernel was chosen, when the program chose it
	Warning string // a generic kernel runs on a CPU that has a better one
}

func (b BLASInfo) String() string {
	s := b.Lib
	if b.Core != "" {
		s += " (core " + b.Core + ")"
	}
	if b.Note != "" {
		s += "; " + b.Note
	}
	if b.Warning != "" {
		s += "; " + b.Warning
	}
	return s
}

// BLAS loads the matrix library on first use and says which one runs the
// products: OpenBLAS (libopenblas.so.0, through purego: no cgo) when it is
// installed, gonum's pure-Go BLAS otherwise.
//
// OpenBLAS runs single-threaded unless OPENBLAS_NUM_THREADS is set: the
// products are cut into tiles of C fixed by their shape, each one
// single-threaded OpenBLAS call, and the tiles run on the cores.
//
// OpenBLAS picks its kernel for the CPU at load time, and releases that do
// not know a CPU fall back to a generic one (Debian's 0.3.21 runs Prescott,
// SSE3, on recent Xeons: 3-5× slower). When that happens on a CPU with AVX2
// or AVX-512 and OPENBLAS_CORETYPE is not set, BLAS loads a private copy of
// the library with OPENBLAS_CORETYPE set from Go's CPU detection (SkylakeX
// for AVX-512 F/BW/DQ/VL, Haswell for AVX2 and FMA) and says so in Note; if
// that fails too, Warning says what to do.
func BLAS() BLASInfo { return loadedBLAS().info }

var loadedBLAS = sync.OnceValue(func() *blasLib {
	lib, info := chooseOpenBLAS(systemLoader())
	if lib == nil {
		return &blasLib{info: info}
	}
	lib.info = info
	return lib
})

// blasLib is the loaded library: OpenBLAS's Fortran sgemm_, whose arguments
// are all pointers (so purego.SyscallN calls it without allocating), or
// nothing for gonum.
type blasLib struct {
	sgemm uintptr
	info  BLASInfo
}

// openBLAS is one loaded copy of OpenBLAS.
type openBLAS struct {
	core  string
	sgemm uintptr
}

// loader is what choosing OpenBLAS needs from the process; tests fake it.
type loader struct {
	open     func(coretype string) (*openBLAS, error) // coretype "": as installed; else a private copy with OPENBLAS_CORETYPE set
	userCore string                                   // $OPENBLAS_CORETYPE
	avx2     bool                                     // the CPU has AVX2 and FMA
	avx512   bool                                     // the CPU has AVX-512 F, BW, DQ and VL
}

// chooseOpenBLAS loads OpenBLAS as installed and, if it runs a generic
// kernel on a CPU with a better one, a copy with the right OPENBLAS_CORETYPE.
// It returns nil when OpenBLAS cannot be loaded.
func chooseOpenBLAS(l loader) (*blasLib, BLASInfo) {
	lib, err := l.open("")
	if err != nil {
		return nil, BLASInfo{Lib: "gonum", Note: "pure Go: OpenBLAS (libopenblas.so.0) is not installed; install libopenblas0 for 5-10× faster products"}
	}
	info := BLASInfo{Lib: "openblas", Core: lib.core}
	want, isa := "", ""
	switch {
	case l.avx512:
		want, isa = "SkylakeX", "AVX-512"
	case l.avx2:
		want, isa = "Haswell", "AVX2"
	}
	if want == "" || !genericCore(lib.core) {
		return &blasLib{sgemm: lib.sgemm}, info
	}
	if l.userCore != "" {
		info.Warning = fmt.Sprintf("WARNING: OPENBLAS_CORETYPE=%s gives the generic %s kernel on a CPU with %s: matrix products run 3-5× slower than with OPENBLAS_CORETYPE=%s",
			l.userCore, lib.core, isa, want)
		return &blasLib{sgemm: lib.sgemm}, info
	}
	fixed, err := l.open(want)
	if err == nil && !genericCore(fixed.core) {
		info.Core = fixed.core
		info.Note = fmt.Sprintf("OpenBLAS chose its generic %s kernel on a CPU with %s: loaded a copy with OPENBLAS_CORETYPE=%s", lib.core, isa, want)
		return &blasLib{sgemm: fixed.sgemm}, info
	}
	if err == nil {
		err = fmt.Errorf("it still reports %s", fixed.core)
	}
	info.Warning = fmt.Sprintf("WARNING: OpenBLAS runs its generic %s kernel on a CPU with %s, matrix products 3-5× slower; reloading it with OPENBLAS_CORETYPE=%s failed (%v): set OPENBLAS_CORETYPE=%s",
		lib.core, isa, want, err, want)
	return &blasLib{sgemm: lib.sgemm}, info
}

// genericCore reports whether an OpenBLAS kernel lacks AVX2: the kernels of
// CPUs before Haswell, which OpenBLAS also falls back to for CPUs it does not
// know (Prescott, Core2, Katmai, Atom, Nehalem, Sandybridge, ...).
func genericCore(core string) bool {
	switch strings.ToLower(core) {
	case "haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator":
		return false
	}
	return true
}

// systemLoader loads OpenBLAS with the dynamic loader of this process.
func systemLoader() loader {
	core, _ := os.LookupEnv("OPENBLAS_CORETYPE")
	l := loader{userCore: core}
	if runtime.GOARCH == "amd64" {
		l.avx2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA
		l.avx512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL
	}
	var installed string // the file of the library loaded first
	l.open = func(coretype string) (*openBLAS, error) {
		restore := setenvs(map[string]string{"OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": coretype})
		defer restore()
		if coretype == "" {
			b, err := dlopenFirst("libopenblas.so.0", "libopenblas.so")
			if err == nil {
				installed, err = mappedFile("libopenblas")
			}
			return b, err
		}
		if installed == "" {
			return nil, fmt.Errorf("the installed library's file is not known")
		}
		priv, err := copyToTemp(installed)
		if err != nil {
			return nil, err
		}
		defer os.Remove(priv)
		return dlopenFirst(priv)
	}
	return l
}

// setenvs sets each variable to its value unless it is already set or the
// value is empty, and returns a function that unsets those it set: OpenBLAS
// reads them when it loads, children of the process do not see them.
func setenvs(vars map[string]string) (restore func()) {
	var set []string
	for k, v := range vars {
		if _, ok := os.LookupEnv(k); !ok && v != "" {
			os.Setenv(k, v)
			set = append(set, k)
		}
	}
	return func() {
		for _, k := range set {
			os.Unsetenv(k)
		}
	}
}

// dlopenFirst loads the first of the named libraries that loads (locally,
// so that a second copy never binds to the first one's symbols) and looks up
// what this package calls.
func dlopenFirst(names ...string) (*openBLAS, error) {
	var lib uintptr
	var err error
	for _, name := range names {
		if lib, err = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	b := &openBLAS{}
	if b.sgemm, err = purego.Dlsym(lib, "sgemm_"); err != nil {
		return nil, err
	}
	corename, err := purego.Dlsym(lib, "openblas_get_corename")
	if err != nil {
		return nil, err
	}
	var name func() string
	purego.RegisterFunc(&name, corename)
	b.core = name()
	return b, nil
}

// mappedFile returns the path of the first file mapped into this process
// whose name starts with prefix (from /proc/self/maps).
func mappedFile(prefix string) (string, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && strings.HasPrefix(filepath.Base(fields[5]), prefix) {
			return fields[5], nil
		}
	}
	return "", fmt.Errorf("no %s* library is mapped", prefix)
}

// copyToTemp copies a file into the temporary directory and returns the
// copy's path.
func copyToTemp(path string) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.CreateTemp("", "libopenblas-*.so")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst.Name())
		return "", err
	}
	return dst.Name(), nil
}
