//go:build !amd64 || purego

package math32

// Without assembly (another architecture, or the purego build tag) only the Go path exists.
var available = []Path{Go}

func rows(op int, y, d, x []float32, a, b float32) { rowsGo(op, y, d, x, a, b) }

func expScaledRows(dst []float32, n, rows int, x []float32, xStride int, a []float32, aStride int) {
	expScaledRowsGo(dst, n, rows, x, xStride, a, aStride)
}

// cpuFamily is unknown without the assembly.
func cpuFamily() (vendor string, family int) { return "", 0 }
