package cuda

import (
	"fmt"
	"math"
)

// threads is the block size of the one-thread-per-element kernels.
const threads = 256

// need returns an error unless b holds exactly n elements of es bytes; a nil b passes when
// optional.
func need(op, name string, b Buffer, n, es int, optional bool) error {
	if b.Nil() {
		if optional {
			return nil
		}
		return fmt.Errorf("cuda: %s: %s is missing", op, name)
	}
	if b.bytes != n*es {
		return fmt.Errorf("cuda: %s: %s has %d bytes, want %d (%d elements of %d bytes)", op, name, b.bytes, n*es, n, es)
	}
	return nil
}

// arg returns xs[i], or the zero Buffer when xs is shorter.
func arg(xs []Buffer, i int) Buffer {
	if i < len(xs) {
		return xs[i]
	}
	return Buffer{}
}

// countArgs fails unless len(xs) is want.
func countArgs(op, what string, xs []Buffer, want int) error {
	if len(xs) != want {
		return fmt.Errorf("cuda: %s: %d %s, want %d", op, len(xs), what, want)
	}
	return nil
}

// fits reports whether the product of the positive factors is at most limit.
func fits(limit int, f ...int) bool {
	p := 1
	for _, x := range f {
		if x < 1 || p > limit/x {
			return false
		}
		p *= x
	}
	return true
}

// elems returns the grid of a grid-stride kernel over n elements: one thread each, at most 32
// blocks of 256 per multiprocessor.
func (d *Device) elems(n int) dim3 {
	return dim3{x: max(1, min((n+threads-1)/threads, 32*max(1, d.info.Multiprocessors)))}
}

// rows returns the grid of a kernel with a thread per column and a stride of gridDim.y over the
// rows (conv_tiles in kernels/conv.cu, whose rows are tiles of steps): ⌈cols/256⌉ blocks across
// and as many down as keep at most 32 blocks of 256 per multiprocessor in all (at most 65535, the
// limit of gridDim.y).
func (d *Device) rows(rows, cols int) dim3 {
	x := ceilDiv(cols, threads)
	return dim3{x: x, y: max(1, min(rows, 65535, 32*max(1, d.info.Multiprocessors)/x))}
}

// ceilDiv is ⌈a/b⌉ for positive b.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// sizeLimit bounds every element count so that byte offsets fit comfortably in int64 and the
// kernels' 32-bit counts (rows, channels) stay valid.
const sizeLimit = math.MaxInt64 / 16

// firstErr returns the first non-nil error (validation reports one problem at a time).
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
