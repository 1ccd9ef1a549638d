package cuda

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mambago/mamba/internal/testutil"
)

// EnvRequire, set to 1 by gpucheck.sh, turns "no GPU here" from a skip into a failure, so that a GPU
// host whose driver or cuBLAS cannot be found never reports the CUDA tests as passed.
const EnvRequire = "MAMBA_CUDA_REQUIRE"

var testDev = sync.OnceValues(func() (*Device, error) {
	d, err := Open(0)
	if err == nil {
		d.SyncEach = true // a failing kernel is reported by the launch that ran it
	}
	return d, err
})

// gpu returns the shared test device, or skips the test naming why it cannot run (fails instead when
// EnvRequire is 1).
func gpu(tb testing.TB) *Device {
	tb.Helper()
	d, err := testDev()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("no GPU although %s=1: %v", EnvRequire, err)
		}
		tb.Skipf("not run, needs an NVIDIA GPU: %v", err)
	}
	return d
}

// seed returns $MAMBA_CUDA_SEED, or a fresh seed, and logs it so that a failure can be replayed.
func seed(tb testing.TB) uint64 {
	tb.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("MAMBA_CUDA_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			tb.Fatalf("MAMBA_CUDA_SEED=%q: %v", v, err)
		}
	}
	tb.Logf("seed %d (set MAMBA_CUDA_SEED to replay)", s)
	return s
}

// devBuf uploads x into fresh device memory freed when the test ends.
func devBuf[T Elem](tb testing.TB, d *Device, x []T) Buffer {
	tb.Helper()
	if len(x) == 0 {
		return Buffer{}
	}
	b, err := d.Alloc(len(x) * elemSize[T]())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Free(b) })
	if err := Upload(d, b, x); err != nil {
		tb.Fatal(err)
	}
	return b
}

func elemSize[T Elem]() int {
	var z T
	switch any(z).(type) {
	case float64, int64, uint64:
		return 8
	case uint16, int16:
		return 2
	case uint8, int8:
		return 1
	}
	return 4
}

// f32 uploads float64 values as float32 (nil for nil).
func f32(tb testing.TB, d *Device, x []float64) Buffer {
	tb.Helper()
	if x == nil {
		return Buffer{}
	}
	return devBuf(tb, d, testutil.Convert[float32](x))
}

// poisoned returns n float32 of device memory filled with NaN, so that an element a kernel fails
// to write shows in every comparison.
func poisoned(tb testing.TB, d *Device, n int) Buffer {
	tb.Helper()
	b, err := d.Alloc32(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Free(b) })
	if err := d.Fill32(b, math.Float32bits(float32(math.NaN()))); err != nil {
		tb.Fatal(err)
	}
	return b
}

// poisonedLike is poisoned(len(x)) when x is not nil, else the zero Buffer.
func poisonedLike(tb testing.TB, d *Device, x []float64) Buffer {
	if x == nil {
		return Buffer{}
	}
	return poisoned(tb, d, len(x))
}

// host downloads a float32 buffer as float64 (nil for the zero Buffer).
func host(tb testing.TB, d *Device, b Buffer) []float64 {
	tb.Helper()
	if b.Nil() {
		return nil
	}
	x := make([]float32, b.Len32())
	if err := Download(d, x, b); err != nil {
		tb.Fatal(err)
	}
	return testutil.Convert[float64](x)
}

// normals is testutil.Normals.
func normals(r *rand.Rand, n int, scale float64) []float64 { return testutil.Normals(r, n, scale) }

// closeAll compares every named tensor of got with want by relative L2 error, logs the errors and
// fails above tol. A tensor present in one map only is an error.
func closeAll(tb testing.TB, label string, got, want map[string][]float64, tol float64) {
	tb.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			tb.Errorf("%s: no result for %s", label, name)
			continue
		}
		e := testutil.RelL2(g, w)
		tb.Logf("%s %-10s rel L2 %.3g", label, name, e)
		if !testutil.Within(e, tol) {
			tb.Errorf("%s: %s rel L2 error %.3g > %g", label, name, e, tol)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			tb.Errorf("%s: result %s has no reference", label, name)
		}
	}
}

// sameBits fails unless every tensor of a and b is bitwise equal (determinism across runs).
func sameBits(tb testing.TB, label string, a, b map[string][]float64) {
	tb.Helper()
	for name, x := range a {
		y := b[name]
		if len(x) != len(y) {
			tb.Errorf("%s: %s has %d and %d elements", label, name, len(x), len(y))
			continue
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				tb.Errorf("%s: %s[%d] is %v in one run and %v in the other", label, name, i, x[i], y[i])
				break
			}
		}
	}
}
