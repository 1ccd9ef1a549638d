package math32

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
)

// Path is an implementation of the row functions: portable Go or a vector instruction set.
type Path uint32

const (
	Go     Path = iota // the scalar functions, element by element
	AVX2               // AVX2 and FMA, 8 lanes
	AVX512             // AVX-512 F, DQ, BW and VL, 16 lanes
)

var pathNames = [...]string{Go: "go", AVX2: "avx2", AVX512: "avx512"}

func (p Path) String() string {
	if int(p) < len(pathNames) {
		return pathNames[p]
	}
	return fmt.Sprintf("Path(%d)", uint32(p))
}

// current is the path in use; init sets it (see Choice).
var current atomic.Uint32

// choice says how init chose the path; envErr is a MAMBA_VECTOR it could not follow.
var (
	choice string
	envErr error
)

func init() {
	vendor, family := cpuFamily()
	p, why, err := choose(available, os.Getenv("MAMBA_VECTOR"), vendor, family)
	current.Store(uint32(p))
	choice, envErr = why, err
}

// preferAVX2 lists the CPUs (vendor, family) whose AVX-512 is no faster than AVX2 for this
// project's loops, where the default is AVX2: AMD family 25 (Zen 3, Zen 4), which runs
// 512-bit operations as two 256-bit halves (measured on the scan: scan/README.md).
var preferAVX2 = []struct {
	vendor string
	family int
}{{"AuthenticAMD", 25}}

// choose returns the path to start with, and why: the one named by env (MAMBA_VECTOR: go,
// avx2 or avx512) if this CPU runs it; else AVX2 on the CPUs of preferAVX2 that have it;
// else the best available. err reports an env value that cannot be followed.
func choose(avail []Path, env, vendor string, family int) (p Path, why string, err error) {
	best := avail[len(avail)-1]
	if env != "" {
		for _, q := range avail {
			if q.String() == env {
				return q, fmt.Sprintf("%v (MAMBA_VECTOR)", q), nil
			}
		}
		names := make([]string, len(avail))
		for i, q := range avail {
			names[i] = q.String()
		}
		err = fmt.Errorf("MAMBA_VECTOR=%q is not a vector path this CPU and build run (%s)", env, strings.Join(names, ", "))
	}
	for _, c := range preferAVX2 {
		if c.vendor == vendor && c.family == family && best == AVX512 {
			return AVX2, fmt.Sprintf("avx2 (%s family %d runs AVX-512 at half width; MAMBA_VECTOR=avx512 to override)", vendor, family), err
		}
	}
	return best, fmt.Sprintf("%v (the best this CPU has)", best), err
}

// Choice says which path the row functions started with and why: the value of
// MAMBA_VECTOR, a CPU family whose AVX-512 runs at half width, or the best this CPU has.
func Choice() string { return choice }

// EnvError reports a MAMBA_VECTOR this CPU and build cannot follow (the default was
// taken instead), for a program to refuse.
func EnvError() error { return envErr }

// Paths returns the paths this build can run on this CPU, the best last.
func Paths() []Path { return slices.Clone(available) }

// Current returns the path the row functions use.
func Current() Path { return Path(current.Load()) }

// SetPath makes the row functions use p, which must be one of Paths. It is for tests and
// benchmarks: results computed before and after differ in the last bits.
func SetPath(p Path) error {
	if !slices.Contains(available, p) {
		return fmt.Errorf("math32: path %v is not available (have %v)", p, available)
	}
	current.Store(uint32(p))
	return nil
}

// Lanes returns the vector width the current path gives a loop that must cover n elements in
// whole vectors (other packages' assembly follows it): 16 on AVX-512 when n is a multiple of
// 16, 8 on AVX2 or AVX-512 when n is a multiple of 8, else 0 (scalar Go).
func Lanes(n int) int {
	switch p := Current(); {
	case p == AVX512 && n%16 == 0:
		return 16
	case p >= AVX2 && n%8 == 0:
		return 8
	}
	return 0
}

// The row functions write y (and d) element by element of x; y and d must be at least as long
// as x (they panic otherwise, like an index out of range), and y may be x.

// ExpAffine sets dst[i] = e^(a·x[i] + b) (a·x[i] + b rounded, then the exp). dst may be x.
func ExpAffine(dst, x []float32, a, b float32) { rows(opExpAffine, dst[:len(x)], nil, x, a, b) }

// SoftplusRow sets y[i] = softplus(x[i]) and d[i] = σ(x[i]), its derivative (see Softplus).
// y may be x.
func SoftplusRow(y, d, x []float32) { rows(opSoftplus, y[:len(x)], d[:len(x)], x, 0, 0) }

// SigmoidRow sets y[i] = σ(x[i]). y may be x.
func SigmoidRow(y, x []float32) { rows(opSigmoid, y[:len(x)], nil, x, 0, 0) }

// SiLURow sets y[i] = silu(x[i]) = x[i]·σ(x[i]). y may be x.
func SiLURow(y, x []float32) { rows(opSiLU, y[:len(x)], nil, x, 0, 0) }

// SiLUGradRow sets y[i] = silu(x[i]) and d[i] = silu'(x[i]) (see SiLU). y may be x.
func SiLUGradRow(y, d, x []float32) { rows(opSiLUGrad, y[:len(x)], d[:len(x)], x, 0, 0) }

// ExpScaledRows sets dst[r·n + j] = e^(x[r·xStride]·a[r·aStride + j]) for j < n and every row
// r < len(dst)/n: rows of exps of a row of a scaled by one element of x. With aStride 0 every
// row scales the same a (the selective scan's Ā_t = exp(Δ_t·A) over time); with aStride n each
// row has its own (Ā = exp(Δ_c·A_c) over channels). a·x is rounded, then the exp, as in
// ExpAffine with b = 0.
func ExpScaledRows(dst []float32, n int, x []float32, xStride int, a []float32, aStride int) {
	if n <= 0 || len(dst) < n {
		return
	}
	r := len(dst) / n
	_, _ = x[(r-1)*xStride], a[(r-1)*aStride:][:n] // bounds, once
	expScaledRows(dst[:r*n], n, r, x, xStride, a, aStride)
}

// The element-wise functions, numbered for the assembly (go_asm.h).
const (
	opSoftplus = iota
	opSigmoid
	opSiLU
	opSiLUGrad
	opExpAffine
)

// rowsGo is the Go path of the element-wise functions. d is nil for the one-output ones.
func rowsGo(op int, y, d, x []float32, a, b float32) {
	switch op {
	case opSoftplus:
		for i, v := range x {
			y[i], d[i] = Softplus(v)
		}
	case opSigmoid:
		for i, v := range x {
			y[i] = Sigmoid(v)
		}
	case opSiLU:
		for i, v := range x {
			y[i], _ = SiLU(v)
		}
	case opSiLUGrad:
		for i, v := range x {
			y[i], d[i] = SiLU(v)
		}
	case opExpAffine:
		for i, v := range x {
			y[i] = Exp(a*v + b)
		}
	}
}

// expScaledRowsGo is the Go path of ExpScaledRows.
func expScaledRowsGo(dst []float32, n, rows int, x []float32, xStride int, a []float32, aStride int) {
	lo, hi := Bounds(a[:n])
	for r := range rows {
		ar := a[r*aStride:][:n]
		if aStride != 0 {
			lo, hi = Bounds(ar)
		}
		ExpRow(dst[r*n:][:n], ar, x[r*xStride], lo, hi)
	}
}
