package autograd

import (
	"fmt"

	"github.com/mambago/mamba/internal/parallel"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Embedding gathers rows of table (vocab, d): out[r] = table[ids[r]], out is
// (ids.Len(), d). ids must come from NewIds (no ignore index) and its
// vocabulary must fit in the table's rows (which may be padded).
func Embedding(ids *Ids, table *gorgonia.Node) (*gorgonia.Node, error) {
	const op = "Embedding"
	if ids == nil {
		return nil, fmt.Errorf("autograd: %s: ids is nil", op)
	}
	if ids.targets {
		return nil, fmt.Errorf("autograd: %s: ids come from NewTargets; use NewIds (no ignore index)", op)
	}
	_, _, dt, err := inputs(op, arg{"table", table, false})
	if err != nil {
		return nil, err
	}
	if err := checkShape(op, "table", table, -1, -1); err != nil {
		return nil, err
	}
	v, d := table.Shape()[0], table.Shape()[1]
	if ids.Vocab() > v {
		return nil, fmt.Errorf("autograd: %s: ids vocabulary %d is larger than the table's %d rows", op, ids.Vocab(), v)
	}
	s := spec{name: op, dtype: dt, in: []tensor.Shape{{v, d}}, out: tensor.Shape{ids.Len(), d}}
	return build(s,
		func() kernel[float32] { return &embed32{held: hold(ids), d: d} },
		func() kernel[float64] { return &embedRef{held: hold(ids), d: d} },
		table)
}

// embedRows and embedCols are the block sizes of the float32 kernel.
const (
	embedRows = 64
	embedCols = 64
)

// embed32 is the fast float32 kernel: forward copies rows in parallel blocks;
// backward parallelises over blocks of columns, each adding the rows in
// position order, so the sums never depend on the number of goroutines.
type embed32 struct {
	held
	d int
}

func (k *embed32) forward(in [][]float32, out []float32) error {
	d := k.d
	parallel.For(len(k.idx), embedRows, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(out[r*d:(r+1)*d], in[0][int(k.idx[r])*d:])
		}
	})
	return nil
}

// backward: out[r] = table[ids[r]] gives dtable[v] = Σ_{r: ids[r] = v} dout[r]
// (scatter-add, rows added in position order).
func (k *embed32) backward(_ [][]float32, dout []float32, din [][]float32) error {
	dt, d := din[0], k.d
	clear(dt)
	parallel.For(d, embedCols, func(_, lo, hi int) {
		for r, id := range k.idx {
			dst, src := dt[int(id)*d:][lo:hi], dout[r*d:][lo:hi]
			for j, g := range src {
				dst[j] += g
			}
		}
	})
	return nil
}

// embedRef is the plain float64 reference kernel.
type embedRef struct {
	held
	d int
}

func (k *embedRef) forward(in [][]float64, out []float64) error {
	for r, id := range k.idx {
		for j := 0; j < k.d; j++ {
			out[r*k.d+j] = in[0][int(id)*k.d+j]
		}
	}
	return nil
}

func (k *embedRef) backward(_ [][]float64, dout []float64, din [][]float64) error {
	clear(din[0])
	for r, id := range k.idx {
		for j := 0; j < k.d; j++ {
			din[0][int(id)*k.d+j] += dout[r*k.d+j]
		}
	}
	return nil
}
