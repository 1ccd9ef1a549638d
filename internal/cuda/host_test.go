package cuda

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/mambago/mamba/internal/cuda/kernels"
	"github.com/mambago/mamba/scan"
)

// Tests that need no GPU: library discovery, launch geometry, the parameter structs' layout against
// the CUDA sources, the kernels' presence in the PTX, and argument validation.

func TestLibraryCandidates(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	globbed := []string{}
	glob := func(p string) ([]string, error) {
		globbed = append(globbed, p)
		if p == "/opt/x/lib64" {
			return []string{p}, nil
		}
		return nil, nil
	}
	got := candidates(EnvBLASLib, blasNames, []string{"$CUDA_HOME/lib64", "/opt/x/lib64"}, getenv, glob)
	want := []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "/opt/x/lib64/libcublas.so.13",
		"/opt/x/lib64/libcublas.so.12", "/opt/x/lib64/libcublas.so.11"}
	if !slices.Equal(got, want) {
		t.Errorf("candidates = %v, want %v", got, want)
	}
	if slices.Contains(globbed, "/lib64") {
		t.Errorf("an unset $CUDA_HOME was searched as %q", "/lib64")
	}
	env["CUDA_HOME"] = "/cuda"
	if got := candidates(EnvBLASLib, blasNames, []string{"$CUDA_HOME/lib64"}, getenv, func(p string) ([]string, error) { return []string{p}, nil }); !slices.Contains(got, "/cuda/lib64/libcublas.so.13") {
		t.Errorf("CUDA_HOME not searched: %v", got)
	}
	env[EnvBLASLib] = "/some/where/libcublas.so.12"
	if got := candidates(EnvBLASLib, blasNames, blasDirGlobs, getenv, glob); !slices.Equal(got, []string{"/some/where/libcublas.so.12"}) {
		t.Errorf("file override: %v", got)
	}
	env[EnvBLASLib] = "/some/dir"
	if got := candidates(EnvBLASLib, blasNames, blasDirGlobs, getenv, glob); !slices.Equal(got, []string{"/some/dir/libcublas.so.13", "/some/dir/libcublas.so.12", "/some/dir/libcublas.so.11"}) {
		t.Errorf("folder override: %v", got)
	}
}

func TestMissingLibrariesAreClearErrors(t *testing.T) {
	_, err := loadDriver([]string{"/nonexistent/libcuda.so.1"})
	if !errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "no NVIDIA driver (libcuda.so.1 not found") {
		t.Errorf("loadDriver of a missing file: %v", err)
	}
	_, err = loadBLAS([]string{"/nonexistent/libcublas.so.13"})
	if !errors.Is(err, ErrNoBLAS) || !strings.Contains(err.Error(), EnvBLASLib) {
		t.Errorf("loadBLAS of a missing file: %v", err)
	}
	// Open works or says why, whatever this machine has.
	d, err := Open(0)
	if err != nil {
		if !errors.Is(err, ErrNoDriver) && !errors.Is(err, ErrNoDevice) && !errors.Is(err, ErrNoBLAS) {
			t.Errorf("Open failed with an error that is not ErrNoDriver, ErrNoDevice or ErrNoBLAS: %v", err)
		}
		t.Logf("Open(0): %v", err)
		return
	}
	defer d.Close()
	t.Logf("Open(0): %+v", d.Info())
	if _, err := Open(1 << 20); err == nil {
		t.Error("Open of a device that does not exist succeeded")
	}
}

// TestLibrariesLoad loads the driver and cuBLAS where this machine has them (a GPU is not needed)
// and checks that calls through purego work and that result codes get their names.
func TestLibrariesLoad(t *testing.T) {
	api, err := driverOnce()
	if err != nil {
		t.Skipf("no libcuda.so.1 on this machine, so its loading is not tested here: %v", err)
	}
	t.Logf("driver: %s", api.path)
	if err := api.check("cuInit", 100); err == nil || !strings.Contains(err.Error(), "cuInit: CUDA_ERROR_NO_DEVICE") {
		t.Errorf("CUresult 100 reads %v", err)
	}
	var v int32
	if err := api.check("cuDriverGetVersion", call(api.cuDriverGetVersion, uintptr(unsafe.Pointer(&v)))); err != nil || v < 11000 {
		t.Errorf("cuDriverGetVersion: %d, %v", v, err)
	}
	b, err := blasOnce()
	if err != nil {
		t.Skipf("no cuBLAS on this machine, so its loading is not tested here: %v", err)
	}
	t.Logf("cuBLAS: %s", b.path)
	if err := b.check("cublasSgemm_v2", 7); err == nil || !strings.Contains(err.Error(), "CUBLAS_STATUS_INVALID_VALUE") {
		t.Errorf("cublasStatus 7 reads %v", err)
	}
}

func TestScanGeometry(t *testing.T) {
	for n := 1; n <= scanMaxState; n++ {
		for _, l := range []int{1, 15, 16, 17, 127, 128, 129, 2048, 100000} {
			s := scan.Shape{Batch: 2, Len: l, Channels: 33, State: n}
			g, err := scanGeometry(s)
			if err != nil {
				t.Fatalf("%+v: %v", s, err)
			}
			switch {
			case g.groups*scanNS < n || g.groups > 1 && (g.groups/2)*scanNS >= n || g.groups&(g.groups-1) != 0 || 32*g.groups > 512:
				t.Errorf("%+v: %d groups", s, g.groups)
			case g.seg%scanTF != 0 || g.seg%scanT != 0 || g.seg != scanT*g.sub:
				t.Errorf("%+v: segment %d steps, sub %d: not a multiple of the tiles", s, g.seg, g.sub)
			case g.nseg*g.seg < l || (g.nseg-1)*g.seg >= l:
				t.Errorf("%+v: %d segments of %d do not cover L", s, g.nseg, g.seg)
			case g.sub*g.groups*scanNS*32*4 > 32<<10:
				t.Errorf("%+v: sub-chunk states take %d bytes", s, g.sub*g.groups*scanNS*32*4)
			case g.smemBwd > 128<<10 || g.smemFwd > 128<<10:
				t.Errorf("%+v: shared memory %d (forward), %d (backward)", s, g.smemFwd, g.smemBwd)
			case g.blocks != 2:
				t.Errorf("%+v: %d channel blocks", s, g.blocks)
			}
		}
	}
	for _, s := range []scan.Shape{{Batch: 1, Len: 1, Channels: 1, State: 65}, {Batch: 0, Len: 1, Channels: 1, State: 1},
		{Batch: 70000, Len: 1, Channels: 1, State: 1}, {Batch: 1, Len: 1 << 30, Channels: 1 << 10, State: 16}} {
		if _, err := scanGeometry(s); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

// cStructs parses the parameter structs of the CUDA sources into their fields' names and Go kinds
// (pointers uint64, int int32, long long int64, float float32, double float64).
func cStructs(t *testing.T) map[string][][2]string {
	out := map[string][][2]string{}
	re := regexp.MustCompile(`(?s)struct (\w+) \{(.*?)\};`)
	files, err := fs.Glob(kernels.Sources, "*.cu*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(kernels.Sources, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasSuffix(m[1], "Params") && m[1] != "AdamSeg" && m[1] != "AdamBlock" {
				continue // not a kernel's parameters (a device-side helper)
			}
			var fields [][2]string
			body := regexp.MustCompile(`//[^\n]*`).ReplaceAllString(m[2], "")
			for _, decl := range strings.Split(body, ";") {
				decl = strings.TrimSpace(strings.ReplaceAll(decl, "const ", ""))
				if decl == "" {
					continue
				}
				typ, rest := "", decl
				for _, ty := range []string{"long long", "unsigned", "float", "double", "int", "uint8_t", "__nv_bfloat16", "AdamSeg", "AdamBlock"} {
					if strings.HasPrefix(decl, ty+" ") || strings.HasPrefix(decl, ty+"*") {
						typ, rest = ty, decl[len(ty):]
						break
					}
				}
				if typ == "" {
					t.Fatalf("%s: struct %s: cannot parse %q", f, m[1], decl)
				}
				for _, name := range strings.Split(rest, ",") {
					name = strings.TrimSpace(name)
					kind := map[string]string{"long long": "int64", "float": "float32", "double": "float64", "int": "int32"}[typ]
					if strings.HasPrefix(name, "*") {
						name, kind = strings.TrimSpace(name[1:]), "uint64"
					}
					fields = append(fields, [2]string{name, kind})
				}
			}
			out[m[1]] = fields
		}
	}
	return out
}

func TestParamStructsMatchSources(t *testing.T) {
	c := cStructs(t)
	for cname, v := range map[string]any{"ScanParams": scanParams{}, "ScanReduceParams": scanReduceParams{},
		"RMSNormParams": rmsNormParams{}, "ColsumParams": colsumParams{}, "ConvParams": convParams{}, "EltParams": eltParams{},
		"EmbedParams": embedParams{}, "CEParams": ceParams{}, "StepParams": stepParams{}, "AdamSeg": adamSeg{}, "AdamBlock": adamBlock{}, "AdamParams": adamParams{}} {
		want, ok := c[cname]
		if !ok {
			t.Errorf("no struct %s in the CUDA sources", cname)
			continue
		}
		rt := reflect.TypeOf(v)
		var got [][2]string
		for i := range rt.NumField() {
			got = append(got, [2]string{rt.Field(i).Name, rt.Field(i).Type.Kind().String()})
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Go fields %v, CUDA fields %v", cname, got, want)
		}
		sizes := regexp.MustCompile(fmt.Sprintf(`sizeof\(%s\) == (\d+)`, cname))
		found := false
		files, _ := fs.Glob(kernels.Sources, "*.cu")
		for _, f := range files {
			b, _ := fs.ReadFile(kernels.Sources, f)
			if m := sizes.FindSubmatch(b); m != nil {
				found = true
				if string(m[1]) != fmt.Sprint(rt.Size()) {
					t.Errorf("%s: Go size %d, CUDA static_assert %s", cname, rt.Size(), m[1])
				}
			}
		}
		if !found {
			t.Errorf("%s: no static_assert of its size", cname)
		}
	}
}

// TestDefinesMatchSources checks the Go mirrors of the kernels' compile-time sizes.
func TestDefinesMatchSources(t *testing.T) {
	src := map[string]string{}
	files, _ := fs.Glob(kernels.Sources, "*.cu")
	for _, f := range files {
		b, _ := fs.ReadFile(kernels.Sources, f)
		for _, m := range regexp.MustCompile(`(?m)^#define (\w+) +(\d+)`).FindAllSubmatch(b, -1) {
			src[string(m[1])] = string(m[2])
		}
	}
	for name, v := range map[string]int{"CONV_KMAX": convKMax, "CONV_TT": convTile, "SCAN_T": scanT, "SCAN_TF": scanTF, "NS": scanNS} {
		if src[name] != fmt.Sprint(v) {
			t.Errorf("#define %s is %q in the CUDA sources, %d in Go", name, src[name], v)
		}
	}
}

func TestKernelsInPTX(t *testing.T) {
	ptx := string(kernels.PTX)
	for _, name := range kernelNames {
		if !strings.Contains(ptx, ".entry "+name+"(") {
			t.Errorf("kernel %s is not in the embedded PTX", name)
		}
	}
	entries := regexp.MustCompile(`\.entry (\w+)\(`).FindAllStringSubmatch(ptx, -1)
	for _, e := range entries {
		if !slices.Contains(kernelNames, e[1]) {
			t.Errorf("the PTX's kernel %s is not in kernelNames", e[1])
		}
	}
}

func TestGemmValidation(t *testing.T) {
	buf := func(n int) Buffer { return Buffer{ptr: 1 << 20, bytes: 4 * n} }
	if err := checkGemm(false, true, 3, 4, 5, buf(15), 5, 4, buf(20), 5, 4, buf(12), 4, 4); err != nil {
		t.Errorf("valid product rejected: %v", err)
	}
	for name, err := range map[string]error{
		"A short":   checkGemm(false, false, 3, 4, 5, buf(14), 5, 4, buf(20), 4, 4, buf(12), 4, 4),
		"lda small": checkGemm(true, false, 3, 4, 5, buf(15), 2, 4, buf(20), 4, 4, buf(12), 4, 4),
		"C short":   checkGemm(false, false, 3, 4, 5, buf(15), 5, 4, buf(20), 4, 4, buf(11), 4, 4),
		"zero k":    checkGemm(false, false, 3, 4, 0, buf(15), 5, 4, buf(20), 4, 4, buf(12), 4, 4),
		"nil B":     checkGemm(false, false, 3, 4, 5, buf(15), 5, 4, Buffer{}, 4, 4, buf(12), 4, 4),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestScanValidation checks that wrong buffers are refused before anything reaches a device.
func TestScanValidation(t *testing.T) {
	s := scan.Shape{Batch: 2, Len: 5, Channels: 3, State: 4}
	g, err := scanGeometry(s)
	if err != nil {
		t.Fatal(err)
	}
	k := &Scan{s: s, g: g}
	f := func(n int) Buffer { return Buffer{ptr: 1 << 20, bytes: 4 * n} }
	in := ScanIn{U: f(30), Delta: f(30), A: f(12), B: f(40), C: f(40)}
	bad := in
	bad.B = f(39)
	if err := k.Forward(bad, f(30), Buffer{}); err == nil || !strings.Contains(err.Error(), "ScanIn.B") {
		t.Errorf("short B: %v", err)
	}
	if err := k.Forward(in, f(29), Buffer{}); err == nil || !strings.Contains(err.Error(), "out") {
		t.Errorf("short out: %v", err)
	}
	bad = in
	bad.Reset = Buffer{ptr: 1 << 20, bytes: 9}
	if err := k.Forward(bad, f(30), Buffer{}); err == nil || !strings.Contains(err.Error(), "Reset") {
		t.Errorf("short reset: %v", err)
	}
	if err := k.Backward(in, f(30), Buffer{}, ScanGrads{Z: f(30)}); err == nil || !strings.Contains(err.Error(), "Z") {
		t.Errorf("gradient of an absent gate: %v", err)
	}
	if err := k.Backward(in, Buffer{}, Buffer{}, ScanGrads{}); err == nil || !strings.Contains(err.Error(), "dout") {
		t.Errorf("no dout: %v", err)
	}
}

func TestBufferSlices(t *testing.T) {
	b := Buffer{ptr: 4096, bytes: 400}
	s := b.Slice32(10, 20)
	if s.Ptr() != 4096+40 || s.Bytes() != 40 || s.Len32() != 10 || s.Nil() {
		t.Errorf("Slice32(10, 20) = %+v", s)
	}
	defer func() {
		if recover() == nil {
			t.Error("Slice past the end did not panic")
		}
	}()
	b.Slice(0, 401)
}

func TestFixturesPresent(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(fixtureDir(), "scan_*.safetensors"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scan fixtures in %s (set SCAN_FIXTURES_DIR): %v", fixtureDir(), err)
	}
	for _, p := range paths {
		if _, _, want := scanFixture(t, p); len(want) < 3 {
			t.Errorf("%s: only %d reference tensors", p, len(want))
		}
	}
}

// TestEmulatorRegistersEveryKernel checks that the host emulator (emu/fakecuda.cpp) can launch every
// kernel the package resolves.
func TestEmulatorRegistersEveryKernel(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("emu", "fakecuda.cpp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range kernelNames {
		if !strings.Contains(string(src), "KERNEL("+name+")") {
			t.Errorf("kernel %s is not registered in emu/fakecuda.cpp", name)
		}
	}
}
