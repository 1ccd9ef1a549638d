package kernel

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Linear is y = x·w[Lo:Hi]ᵀ (+ bias[Lo:Hi]) (+ r) for x (Rows, In), a weight
// w (Out, In) of which rows Lo … Hi−1 are used, bias (Out) with Bias and a
// residual r (Rows, Hi−Lo) with Residual; y is (Rows, Hi−Lo). The bias and
// the residual are added in the product's tiles (C is filled with them and
// the product added), so the residual stream costs no pass of its own.
//
// Backward, with g = ∂L/∂y:
//
//	∂L/∂x = g·w[Lo:Hi]                              (Rows, In)
//	∂L/∂w[Lo:Hi] = gᵀ·x, 0 in the other rows        (Out, In)
//	∂L/∂bias[Lo:Hi] = Σ_rows g, 0 elsewhere          (Out)
//	∂L/∂r = g
type Linear struct {
	Rows, In, Out, Lo, Hi int
	Bias, Residual        bool
}

func (s Linear) String() string {
	return fmt.Sprintf("Linear{rows=%d,in=%d,out=%d,lo=%d,hi=%d,bias=%t,residual=%t}", s.Rows, s.In, s.Out, s.Lo, s.Hi, s.Bias, s.Residual)
}

func (s Linear) Inputs() [][]int {
	in := [][]int{{s.Rows, s.In}, {s.Out, s.In}}
	if s.Bias {
		in = append(in, []int{s.Out})
	}
	if s.Residual {
		in = append(in, []int{s.Rows, s.Hi - s.Lo})
	}
	return in
}

func (s Linear) Output() []int { return []int{s.Rows, s.Hi - s.Lo} }

// PassThrough reports whether input i is the residual, whose gradient is the output's.
func (s Linear) PassThrough(i int) bool { return s.Residual && i == s.residual() }

// residual is the index of the residual input (the one past the last without).
func (s Linear) residual() int {
	if s.Bias {
		return 3
	}
	return 2
}

func (s Linear) Validate() error {
	if s.Lo < 0 || s.Hi > s.Out || s.Lo >= s.Hi {
		return fmt.Errorf("kernel: Linear: rows [%d, %d) of a weight with %d rows are not defined", s.Lo, s.Hi, s.Out)
	}
	return validate(s, "rows,in,out", s.Rows, s.In, s.Out)
}

// split returns x, w, bias (or nil) and r (or nil) of in.
func linearSplit[T float32 | float64](s Linear, in [][]T) (x, w, b, r []T) {
	x, w, i := in[0], in[1], 2
	if s.Bias {
		b, i = in[i], i+1
	}
	if s.Residual {
		r = in[i]
	}
	return
}

// linBiasCols is the number of columns in one block of the bias gradient.
const linBiasCols = 64

func (s Linear) CPUKernel() Kernel[[]float32] {
	n := s.Hi - s.Lo
	k := &linear32{s: s}
	var prep func(i0, i1, j0, j1 int)
	if s.Bias || s.Residual {
		prep = k.prep
	}
	k.fwd = newProduct(false, true, s.Rows, n, s.In, s.In, s.In, n, prep)
	k.fwdTasks, k.fwdSums = newTasks(productTask(k.fwd)), newTasks(reduceTask(k.fwd))
	k.dw = newProduct(true, false, n, s.In, s.Rows, n, s.In, s.In, nil)
	k.dx = newProduct(false, false, s.Rows, s.In, n, n, s.In, s.In, nil)
	k.bwdTasks = newTasks(productTask(k.dw), productTask(k.dx),
		task{blocks(n, linBiasCols), k.biasItem}, task{blocks(s.Rows, copyRows), k.residualItem})
	k.bwdSums = newTasks(reduceTask(k.dw), reduceTask(k.dx))
	return k
}

// linear32 is the float32 kernel: tiled products, and in the backward the
// tiles of dw and dx, the bias sums and the residual copy as one parallel loop.
type linear32 struct {
	s                 Linear
	fwd, dw, dx       *product
	fwdTasks, fwdSums *tasks
	bwdTasks, bwdSums *tasks
	bias, r, y        []float32 // forward operands, for prep
	dy, dbias, dr     []float32 // backward operands
	addBias, addR     bool      // the backward adds to dbias, dr
}

// prep fills a tile of y with the residual and the bias before the product
// is added.
func (k *linear32) prep(i0, i1, j0, j1 int) {
	n := k.s.Hi - k.s.Lo
	for i := i0; i < i1; i++ {
		row := k.y[i*n+j0 : i*n+j1]
		switch {
		case k.r != nil:
			copy(row, k.r[i*n+j0:])
			if k.bias != nil {
				for j, b := range k.bias[k.s.Lo+j0 : k.s.Lo+j1] {
					row[j] += b
				}
			}
		default:
			copy(row, k.bias[k.s.Lo+j0:])
		}
	}
}

func (k *linear32) Forward(in [][]float32, y []float32) {
	x, w, b, r := linearSplit(k.s, in)
	k.bias, k.r, k.y = b, r, y
	k.fwd.set(x, w[k.s.Lo*k.s.In:], y)
	runProducts(k.fwdTasks, k.fwdSums, k.fwd)
	k.bias, k.r, k.y = nil, nil, nil
}

func (k *linear32) Backward(in [][]float32, dy []float32, din [][]float32) {
	k.BackwardAdd(in, dy, din, nil)
}

// Accumulates: x, w and bias (the rows of w and bias outside [Lo, Hi) are
// then left as they are: another Linear of the same weight fills them) and
// the residual.
func (k *linear32) Accumulates(i int) bool {
	return i < 2 || k.s.Bias && i == 2 || k.s.Residual && i == k.s.residual()
}

func (k *linear32) BackwardAdd(in [][]float32, dy []float32, din [][]float32, add []bool) {
	s := k.s
	x, w, _, _ := linearSplit(s, in)
	dx, dw, db, dr := linearSplit(s, din)
	n := s.Hi - s.Lo
	t, sums := k.bwdTasks.list, k.bwdSums.list
	t[0].n, t[1].n, t[2].n, t[3].n, sums[0].n, sums[1].n = 0, 0, 0, 0, 0, 0
	pw, px := k.dw, k.dx
	if dw != nil {
		pw.set(dy, x, dw[s.Lo*s.In:])
		if adds(add, 1) {
			pw.accumulate()
		} else {
			clear(dw[:s.Lo*s.In])
			clear(dw[s.Hi*s.In:])
		}
		t[0].n, sums[0].n = pw.items(), pw.reduceItems()
	} else {
		pw = nil
	}
	if dx != nil {
		px.set(dy, w[s.Lo*s.In:], dx)
		if adds(add, 0) {
			px.accumulate()
		}
		t[1].n, sums[1].n = px.items(), px.reduceItems()
	} else {
		px = nil
	}
	k.addBias, k.addR = s.Bias && adds(add, 2), s.Residual && adds(add, s.residual())
	if db != nil {
		if !k.addBias {
			clear(db[:s.Lo])
			clear(db[s.Hi:])
		}
		t[2].n = blocks(n, linBiasCols)
	}
	if dr != nil {
		t[3].n = blocks(s.Rows, copyRows)
	}
	k.dy, k.dbias, k.dr = dy, db, dr
	runProducts(k.bwdTasks, k.bwdSums, pw, px)
	k.dy, k.dbias, k.dr = nil, nil, nil
}

// biasItem sums a block of columns of dy over the rows, in row order.
func (k *linear32) biasItem(_, b int) {
	n := k.s.Hi - k.s.Lo
	lo, hi := span(b, linBiasCols, n)
	sum := k.dbias[k.s.Lo+lo : k.s.Lo+hi]
	if !k.addBias {
		clear(sum)
	}
	for r := 0; r < k.s.Rows; r++ {
		for j, g := range k.dy[r*n+lo : r*n+hi] {
			sum[j] += g
		}
	}
}

func (k *linear32) residualItem(_, b int) {
	n := k.s.Hi - k.s.Lo
	lo, hi := span(b, copyRows, k.s.Rows)
	if k.addR {
		AddRow(k.dr[lo*n:hi*n], k.dy[lo*n:])
		return
	}
	copy(k.dr[lo*n:hi*n], k.dy[lo*n:])
}

func (s Linear) ReferenceKernel() Kernel[[]float64] { return linearRef{s} }

// linearRef is the float64 reference: gonum's dgemm and plain loops.
type linearRef struct{ s Linear }

func (k linearRef) Forward(in [][]float64, y []float64) {
	s := k.s
	x, w, b, r := linearSplit(s, in)
	n := s.Hi - s.Lo
	gonum.Implementation{}.Dgemm(blas.NoTrans, blas.Trans, s.Rows, n, s.In, 1, x, s.In, w[s.Lo*s.In:], s.In, 0, y, n)
	for i := 0; i < s.Rows; i++ {
		for j := 0; j < n; j++ {
			if b != nil {
				y[i*n+j] += b[s.Lo+j]
			}
			if r != nil {
				y[i*n+j] += r[i*n+j]
			}
		}
	}
}

func (k linearRef) Backward(in [][]float64, dy []float64, din [][]float64) {
	s, g := k.s, gonum.Implementation{}
	x, w, _, _ := linearSplit(s, in)
	dx, dw, db, dr := linearSplit(s, din)
	n := s.Hi - s.Lo
	if dx != nil {
		g.Dgemm(blas.NoTrans, blas.NoTrans, s.Rows, s.In, n, 1, dy, n, w[s.Lo*s.In:], s.In, 0, dx, s.In)
	}
	if dw != nil {
		clear(dw)
		g.Dgemm(blas.Trans, blas.NoTrans, n, s.In, s.Rows, 1, dy, n, x, s.In, 0, dw[s.Lo*s.In:], s.In)
	}
	if db != nil {
		clear(db)
		for i := 0; i < s.Rows; i++ {
			for j := 0; j < n; j++ {
				db[s.Lo+j] += dy[i*n+j]
			}
		}
	}
	if dr != nil {
		copy(dr, dy)
	}
}
