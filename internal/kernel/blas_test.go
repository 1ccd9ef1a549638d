package kernel

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"

	"github.com/mambago/mamba/internal/testutil"
)

// fakeOpenBLAS is a loader whose library reports a given core as installed
// and the forced one when loaded with OPENBLAS_CORETYPE.
func fakeOpenBLAS(installed string, reload error, opened *[]string) func(string) (*openBLAS, error) {
	return func(coretype string) (*openBLAS, error) {
		*opened = append(*opened, coretype)
		switch {
		case installed == "":
			return nil, errors.New("libopenblas.so.0: cannot open shared object file")
		case coretype == "":
			return &openBLAS{core: installed, sgemm: 1}, nil
		case reload != nil:
			return nil, reload
		}
		return &openBLAS{core: coretype, sgemm: 2}, nil
	}
}

// TestChooseOpenBLAS: a generic kernel on a CPU with AVX2 or AVX-512 is
// replaced by a copy loaded with OPENBLAS_CORETYPE from the CPU's features,
// never over the user's OPENBLAS_CORETYPE, and a failure is a warning.
func TestChooseOpenBLAS(t *testing.T) {
	for _, c := range []struct {
		name               string
		installed, user    string
		avx2, avx512       bool
		reload             error
		wantLib, wantCore  string
		wantOpened         string // the coretypes opened, comma-separated
		wantNote, wantWarn string
	}{
		{name: "no OpenBLAS", avx2: true, wantLib: "gonum", wantOpened: "", wantNote: "not installed"},
		{name: "known core", installed: "Cooperlake", avx2: true, avx512: true, wantLib: "openblas", wantCore: "Cooperlake", wantOpened: ""},
		{name: "generic on AVX-512", installed: "Prescott", avx2: true, avx512: true, wantLib: "openblas", wantCore: "SkylakeX",
			wantOpened: ",SkylakeX", wantNote: "generic Prescott kernel on a CPU with AVX-512: loaded a copy with OPENBLAS_CORETYPE=SkylakeX"},
		{name: "generic on AVX2", installed: "Core2", avx2: true, wantLib: "openblas", wantCore: "Haswell", wantOpened: ",Haswell", wantNote: "OPENBLAS_CORETYPE=Haswell"},
		{name: "generic on an old CPU", installed: "Prescott", wantLib: "openblas", wantCore: "Prescott", wantOpened: ""},
		{name: "user's choice", installed: "Prescott", user: "Prescott", avx2: true, avx512: true, wantLib: "openblas", wantCore: "Prescott",
			wantOpened: "", wantWarn: "WARNING: OPENBLAS_CORETYPE=Prescott gives the generic Prescott kernel"},
		{name: "reload fails", installed: "Prescott", avx2: true, avx512: true, reload: errors.New("no space left on device"), wantLib: "openblas",
			wantCore: "Prescott", wantOpened: ",SkylakeX", wantWarn: "WARNING: OpenBLAS runs its generic Prescott kernel on a CPU with AVX-512"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var opened []string
			lib, info := chooseOpenBLAS(loader{open: fakeOpenBLAS(c.installed, c.reload, &opened), userCore: c.user, avx2: c.avx2, avx512: c.avx512})
			if info.Lib != c.wantLib || info.Core != c.wantCore {
				t.Errorf("got %s core %q, want %s core %q", info.Lib, info.Core, c.wantLib, c.wantCore)
			}
			if got := strings.Join(opened, ","); got != c.wantOpened && !(c.wantOpened == "" && got == "") {
				t.Errorf("opened %q, want %q", got, c.wantOpened)
			}
			if !strings.Contains(info.Note, c.wantNote) || (c.wantNote == "") != (info.Note == "") {
				t.Errorf("note %q, want one containing %q", info.Note, c.wantNote)
			}
			if !strings.Contains(info.Warning, c.wantWarn) || (c.wantWarn == "") != (info.Warning == "") {
				t.Errorf("warning %q, want one containing %q", info.Warning, c.wantWarn)
			}
			if (lib == nil) != (c.wantLib == "gonum") {
				t.Errorf("library %v for %s", lib, c.wantLib)
			}
			if c.wantWarn != "" && !strings.Contains(info.String(), "WARNING") {
				t.Errorf("String() %q hides the warning", info.String())
			}
		})
	}
}

// TestOpenBLASPrivateCopy loads a private copy of the installed OpenBLAS
// with OPENBLAS_CORETYPE=Haswell, as BLAS does for a generic kernel, and
// checks that the copy runs Haswell's kernel and multiplies correctly.
func TestOpenBLASPrivateCopy(t *testing.T) {
	if BLAS().Lib != "openblas" {
		t.Skip("OpenBLAS is not installed: install libopenblas0 to run this test (CI does)")
	}
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		t.Skip("the CPU has no AVX2 and FMA, so OPENBLAS_CORETYPE=Haswell cannot run here")
	}
	l := systemLoader()
	if _, err := l.open(""); err != nil {
		t.Fatal(err)
	}
	b, err := l.open("Haswell")
	if err != nil {
		t.Fatal(err)
	}
	if b.core != "Haswell" {
		t.Errorf("the private copy reports core %q, want Haswell", b.core)
	}
}

// TestProductMatchesGonum compares the tiled OpenBLAS products with gonum's
// sgemm on random shapes, both transposes and padded leading dimensions.
func TestProductMatchesGonum(t *testing.T) {
	if BLAS().Lib != "openblas" {
		t.Skip("OpenBLAS is not installed: install libopenblas0 to run this test (CI does)")
	}
	r := rand.New(rand.NewPCG(21, 22))
	for _, sh := range [][3]int{{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {300, 90, 80}, {90, 300, 80}, {700, 64, 300}, {80, 90, 5000}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				ar, ac := m, k
				if ta {
					ar, ac = k, m
				}
				br, bc := k, n
				if tb {
					br, bc = n, k
				}
				a := testutil.Convert[float32](testutil.Normals(r, ar*(ac+2), 1))
				b := testutil.Convert[float32](testutil.Normals(r, br*(bc+1), 1))
				var got [2][]float32
				for i := range got {
					p := newProduct(ta, tb, m, n, k, ac+2, bc+1, n+3, nil)
					if i == 1 {
						p.calls = nil // gonum
					}
					got[i] = make([]float32, m*(n+3))
					p.set(a, b, got[i])
					runProducts(newTasks(productTask(p)), newTasks(reduceTask(p)), p)
				}
				testutil.Close(t, "tiled sgemm, OpenBLAS vs gonum", got[0], got[1], 1e-6)
			}
		}
	}
}

// TestProductCut: large products are cut into 32 to 63 items (or as many as
// their size allows), k first into chunks of at least 512, then C into
// tiles whose sides are multiples of 16; small ones stay one call.
func TestProductCut(t *testing.T) {
	for _, c := range []struct{ m, n, k, items, chunks int }{
		{4096, 512, 256, 32, 1}, // in_proj of the bench model, one half
		{512, 256, 4096, 32, 8}, // its weight gradient
		{4096, 48, 512, 32, 1},  // x_proj
		{48, 512, 4096, 32, 8},  // its weight gradient
		{16, 16, 16, 1, 1},
		{1, 1 << 20, 1, 4, 1},
		{64, 64, 1 << 16, 32, 32},
		{4096, 4096, 4096, 32, 8},
	} {
		tm, tn, kc := productCut(c.m, c.n, c.k)
		p := newCutProduct(false, false, c.m, c.n, c.k, c.k, c.n, c.n, tm, tn, kc, nil)
		side := func(s, full int) bool { return s == full || s%16 == 0 }
		if p.items() != c.items || p.chunks() != c.chunks || !side(tm, c.m) || !side(tn, c.n) || !side(kc, c.k) {
			t.Errorf("%d×%d×%d: tiles %d×%d, chunks of %d: %d items in %d chunks, want %d in %d", c.m, c.n, c.k, tm, tn, kc, p.items(), p.chunks(), c.items, c.chunks)
		}
	}
}
