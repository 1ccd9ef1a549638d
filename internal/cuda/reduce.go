package cuda

import (
	"fmt"
	"unsafe"
)

// colRows is the fewest rows each partial sum of kernels/reduce.cu covers.
const colRows = 64

// colChunk returns the rows of one partial: at least colRows, and enough for about 128 partials.
func colChunk(rows int) int { return max(colRows, ceilDiv(rows, 128)) }

// colsumParams mirrors ColsumParams in kernels/reduce.cu.
type colsumParams struct {
	a, b, s, part, out    uint64
	rows                  int64
	cols, lda, ldb, parts int32
	chunk, pad            int32
}

// colsum computes deterministic column sums out_j = Σ_r a[r,j]·b[r,j]·s_r (b, s optional) of a
// (rows, cols) matrix: per-block partials over colRows rows, then their sum in block order.
type colsum struct {
	d             *Device
	rows, cols    int
	part          Buffer
	partial, sums function
	p             colsumParams
}

func (d *Device) newColsum(rows, cols int) (*colsum, error) {
	if ceilDiv(rows, colChunk(rows)) > 65535 {
		return nil, fmt.Errorf("cuda: column sums over %d rows: more than 65535 blocks of %d", rows, colChunk(rows))
	}
	c := &colsum{d: d, rows: rows, cols: cols, partial: d.function("colsum_partial"), sums: d.function("sum_parts")}
	var err error
	c.part, err = d.Alloc32(ceilDiv(rows, colChunk(rows)) * cols)
	return c, err
}

func (c *colsum) close() error { return c.d.Free(c.part) }

// run launches the two passes (the caller has entered and validated the sizes).
func (c *colsum) run(a Buffer, lda int, b Buffer, ldb int, s, out Buffer) error {
	chunk := colChunk(c.rows)
	parts := ceilDiv(c.rows, chunk)
	c.p = colsumParams{a: a.ptr, b: b.ptr, s: s.ptr, part: c.part.ptr, out: out.ptr, rows: int64(c.rows),
		cols: int32(c.cols), lda: int32(lda), ldb: int32(ldb), parts: int32(parts), chunk: int32(chunk)}
	d := c.d
	if err := d.launch(c.partial.name, c.partial.f, dim3{x: ceilDiv(c.cols, threads), y: parts}, dim3{x: threads}, 0, unsafe.Pointer(&c.p)); err != nil {
		return err
	}
	return d.launch(c.sums.name, c.sums.f, dim3{x: ceilDiv(c.cols, threads)}, dim3{x: threads}, 0, unsafe.Pointer(&c.p))
}
