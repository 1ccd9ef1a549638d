// Package math32 is the project's float32 elementary math, shared by every kernel so that
// training, generation and any backend compute the same numbers:
//
//	Exp(x)      = e^x                    relative error ≤ 1.6e-7, subnormal results 0, NaN kept
//	Softplus(x) = ln(1 + e^x)            x itself above SoftplusThreshold (as torch's softplus), and σ(x)
//	Sigmoid(x)  = σ(x) = 1/(1 + e^{−x})
//	SiLU(x)     = x·σ(x)                 and its derivative σ(x)·(1 + x·(1 − σ(x)))
//
// and the same over rows, vectorised:
//
//	ExpAffine(dst, x, a, b)          dst_i = e^(a·x_i + b)
//	ExpScaledRows(dst, n, x, xs, a, as)  dst_{r,j} = e^(x_{r·xs}·a_{r·as+j}), rows of n
//	SoftplusRow(y, d, x)             y_i = softplus(x_i), d_i = σ(x_i)
//	SigmoidRow(y, x)                 y_i = σ(x_i)
//	SiLURow(y, x), SiLUGradRow(y, d, x)  y_i = silu(x_i), d_i = silu'(x_i)
//
// # Scalar
//
// Exp reduces x = (64k + j)·ln2/64 + r, |r| ≤ ln2/128 (Cody–Waite), takes 2^(j/64) from a
// 64-entry table, e^r − 1 ≈ r + r²/2, and adds k to the exponent bits: about 20 scalar
// instructions, no float64 round trip, no call into package math except bit casts, which
// compile to register moves. Softplus and Sigmoid go through e^{−|x|} ≤ 1, so nothing
// overflows; ln(1 + e) = 2·atanh(e/(2 + e)) by its series.
//
// # Vector
//
// The row functions run on one of three paths (Path): portable Go (the scalar functions
// element by element), AVX2 with FMA (8 lanes), or AVX-512 (16 lanes), chosen at start-up
// (Choice says how): the one the environment variable MAMBA_VECTOR names (go, avx2, avx512)
// if this CPU runs it; otherwise AVX2 on the CPU families whose AVX-512 is no faster here
// (AMD family 25, Zen 3 and 4, which splits 512-bit operations into two halves: CPUID's
// vendor and family); otherwise the best this CPU has (golang.org/x/sys/cpu). The build tag
// purego leaves only Go. The
// vector exp needs no table (a gather would be slow): x = k·ln2 + r, |r| ≤ ln2/2, e^r by a
// degree-6 polynomial, relative error ≤ 1.2e-7, below ExpLo 0, NaN kept. Softplus, σ and SiLU
// are built on it as in the scalar code. Both widths run one macro text (rows_amd64.s), so
// their lanes compute identical bits; a row's last, partial vector is computed padded to a
// whole one, so every element gets the same bits wherever it stands in a row. The paths differ
// from each other in the last bits.
//
// SetPath switches every row function (and the kernels of other packages that follow Current)
// to another path, for tests and benchmarks that compare them.
package math32
