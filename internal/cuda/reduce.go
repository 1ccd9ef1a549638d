package cuda

import (
	"fmt"
	"unsafe"
)

// colRows is COL_ROWS of kernels/reduce.cu: the rows each partial sum covers.
const colRows = 64

// colsumParams mirrors ColsumParams in kernels/reduce.cu.
type colsumParams struct {
	a, b, s, part, out    uint64
	rows                  int64
	cols, lda, ldb, parts int32
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
	if ceilDiv(rows, colRows) > 65535 {
		return nil, fmt.Errorf("cuda: column sums over %d rows: more than 65535 blocks of %d", rows, colRows)
	}
	c := &colsum{d: d, rows: rows, cols: cols, partial: d.function("colsum_partial"), sums: d.function("sum_parts")}
	var err error
	c.part, err = d.Alloc32(ceilDiv(rows, colRows) * cols)
	return c, err
}

func (c *colsum) close() error { return c.d.Free(c.part) }

// run launches the two passes (the caller has entered and validated the sizes).
func (c *colsum) run(a Buffer, lda int, b Buffer, ldb int, s, out Buffer) error {
	parts := ceilDiv(c.rows, colRows)
	c.p = colsumParams{a: a.ptr, b: b.ptr, s: s.ptr, part: c.part.ptr, out: out.ptr, rows: int64(c.rows),
		cols: int32(c.cols), lda: int32(lda), ldb: int32(ldb), parts: int32(parts)}
	d := c.d
	if err := d.launch(c.partial.name, c.partial.f, dim3{x: ceilDiv(c.cols, threads), y: parts}, dim3{x: threads}, 0, unsafe.Pointer(&c.p)); err != nil {
		return err
	}
	return d.launch(c.sums.name, c.sums.f, dim3{x: ceilDiv(c.cols, threads)}, dim3{x: threads}, 0, unsafe.Pointer(&c.p))
}
