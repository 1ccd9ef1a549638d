package kernel

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/mambago/mamba/internal/parallel"
)

// GEMM is C = op(A)·op(B) with op(A) (M, K) and op(B) (K, N), row-major: A
// is (M, K), or (K, M) stored with TransA; B is (K, N), or (N, K) with TransB.
type GEMM struct {
	M, N, K        int
	TransA, TransB bool
}

func (s GEMM) String() string {
	return fmt.Sprintf("GEMM{m=%d,n=%d,k=%d,transA=%t,transB=%t}", s.M, s.N, s.K, s.TransA, s.TransB)
}

func (s GEMM) Inputs() [][]int {
	a, b := []int{s.M, s.K}, []int{s.K, s.N}
	if s.TransA {
		a = []int{s.K, s.M}
	}
	if s.TransB {
		b = []int{s.N, s.K}
	}
	return [][]int{a, b}
}

func (s GEMM) Output() []int   { return []int{s.M, s.N} }
func (s GEMM) Validate() error { return validate(s, "m,n,k", s.M, s.N, s.K) }

// ld returns the leading dimensions of A and B as stored.
func (s GEMM) ld() (lda, ldb int) {
	lda, ldb = s.K, s.N
	if s.TransA {
		lda = s.M
	}
	if s.TransB {
		ldb = s.K
	}
	return
}

// The tiling of products. A product of m·n·k multiply-adds is cut into
// min(tileCount, m·n·k/tileWork) tiles of C or more (fewer than twice as
// many), by
// halving the longer side of the tile (so tiles stay square-ish, which keeps
// the repacking of A and B, a fraction 1/tm + 1/tn of the work, small) in
// multiples of tileMin. Every tile is one single-threaded BLAS call whose
// sums over k run inside the call, so C does not depend on the number of
// goroutines; the tiles depend only on m, n and k.
const (
	tileMin   = 16
	tileWork  = 1 << 18
	tileCount = 64
)

// tileSizes returns the tile sides (tm, tn) of an m×n×k product.
func tileSizes(m, n, k int) (tm, tn int) {
	tm, tn = m, n
	want := min(tileCount, m*n*k/tileWork)
	half := func(x int) int { return (blocks(x, 2) + tileMin - 1) / tileMin * tileMin }
	for blocks(m, tm)*blocks(n, tn) < want {
		switch {
		case tm >= tn && tm > tileMin:
			tm = half(tm)
		case tn > tileMin:
			tn = half(tn)
		case tm > tileMin:
			tm = half(tm)
		default:
			return tm, tn
		}
	}
	return tm, tn
}

// product is one planned C = op(A)·op(B) on row-major operands with leading
// dimensions lda, ldb, ldc, cut into tiles of C. With prep, each tile of C
// is first filled by prep(i0, i1, j0, j1) and the product is added to it.
type product struct {
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int
	tm, tn         int
	prep           func(i0, i1, j0, j1 int)
	calls          []*tileCall // OpenBLAS argument blocks, one per tile
	a, b, c        []float32   // the operands of the next run
}

// tileCall holds the arguments of one Fortran sgemm_ call, all passed by
// pointer; argv points at them once, and at the operands before each call.
type tileCall struct {
	ta, tb                 byte
	m, n, k, lda, ldb, ldc int32
	alpha, beta            float32
	argv                   [13]uintptr
}

func newProduct(transA, transB bool, m, n, k, lda, ldb, ldc int, prep func(i0, i1, j0, j1 int)) *product {
	tm, tn := tileSizes(m, n, k)
	return newTiledProduct(transA, transB, m, n, k, lda, ldb, ldc, tm, tn, prep)
}

// newTiledProduct is newProduct with the given tile sides.
func newTiledProduct(transA, transB bool, m, n, k, lda, ldb, ldc, tm, tn int, prep func(i0, i1, j0, j1 int)) *product {
	p := &product{transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, tm: tm, tn: tn, prep: prep}
	if loadedBLAS().sgemm != 0 {
		p.calls = make([]*tileCall, p.tiles())
		for t := range p.calls {
			i0, i1, j0, j1 := p.tile(t)
			p.calls[t] = p.newCall(i1-i0, j1-j0)
		}
	}
	return p
}

// newCall sets up the arguments of a tile of mt×nt: row-major C = op(A)·op(B)
// is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so sgemm_ gets B first.
func (p *product) newCall(mt, nt int) *tileCall {
	c := &tileCall{ta: 'N', tb: 'N', m: int32(nt), n: int32(mt), k: int32(p.k),
		lda: int32(p.ldb), ldb: int32(p.lda), ldc: int32(p.ldc), alpha: 1}
	if p.transB {
		c.ta = 'T'
	}
	if p.transA {
		c.tb = 'T'
	}
	if p.prep != nil {
		c.beta = 1
	}
	ptr := func(x unsafe.Pointer) uintptr { return uintptr(x) }
	c.argv = [13]uintptr{ptr(unsafe.Pointer(&c.ta)), ptr(unsafe.Pointer(&c.tb)), ptr(unsafe.Pointer(&c.m)), ptr(unsafe.Pointer(&c.n)),
		ptr(unsafe.Pointer(&c.k)), ptr(unsafe.Pointer(&c.alpha)), 0, ptr(unsafe.Pointer(&c.lda)), 0, ptr(unsafe.Pointer(&c.ldb)),
		ptr(unsafe.Pointer(&c.beta)), 0, ptr(unsafe.Pointer(&c.ldc))}
	return c
}

func (p *product) tiles() int { return blocks(p.m, p.tm) * blocks(p.n, p.tn) }

// tile returns the rows and columns of C of tile t (row-major order of tiles).
func (p *product) tile(t int) (i0, i1, j0, j1 int) {
	nj := blocks(p.n, p.tn)
	i0, j0 = t/nj*p.tm, t%nj*p.tn
	return i0, min(p.m, i0+p.tm), j0, min(p.n, j0+p.tn)
}

// set gives the product its operands for the next run.
func (p *product) set(a, b, c []float32) { p.a, p.b, p.c = a, b, c }

// run computes tile t.
func (p *product) run(_, t int) {
	i0, i1, j0, j1 := p.tile(t)
	if p.prep != nil {
		p.prep(i0, i1, j0, j1)
	}
	ao, bo, co := i0*p.lda, j0, i0*p.ldc+j0
	if p.transA {
		ao = i0
	}
	if p.transB {
		bo = j0 * p.ldb
	}
	if p.calls == nil {
		tA, tB, beta := blas.NoTrans, blas.NoTrans, float32(0)
		if p.transA {
			tA = blas.Trans
		}
		if p.transB {
			tB = blas.Trans
		}
		if p.prep != nil {
			beta = 1
		}
		gonum.Implementation{}.Sgemm(tA, tB, i1-i0, j1-j0, p.k, 1, p.a[ao:], p.lda, p.b[bo:], p.ldb, beta, p.c[co:], p.ldc)
		return
	}
	c := p.calls[t]
	c.argv[6] = uintptr(unsafe.Pointer(&p.b[bo]))
	c.argv[8] = uintptr(unsafe.Pointer(&p.a[ao]))
	c.argv[11] = uintptr(unsafe.Pointer(&p.c[co]))
	purego.SyscallN(loadedBLAS().sgemm, c.argv[:]...)
}

// task is a parallel loop of n items, one part of a kernel's work.
type task struct {
	n int
	f items
}

// tasks runs several parallel loops as one: items are handed out task by
// task, in order, to whichever worker is free, so small loops fill the cores
// while a large one finishes.
type tasks struct {
	list []task
	job  parallel.Job
	body items
}

func newTasks(list ...task) *tasks {
	t := &tasks{list: list}
	t.body = t.item
	return t
}

func (t *tasks) item(w, i int) {
	for _, tk := range t.list {
		if i < tk.n {
			tk.f(w, i)
			return
		}
		i -= tk.n
	}
}

func (t *tasks) run() {
	n := 0
	for _, tk := range t.list {
		n += tk.n
	}
	run(&t.job, t.body, n)
}

// productTask is the task that runs every tile of p.
func productTask(p *product) task { return task{p.tiles(), p.run} }

func (s GEMM) cpu() Kernel[[]float32] {
	lda, ldb := s.ld()
	k := &gemm32{s: s, fwd: newProduct(s.TransA, s.TransB, s.M, s.N, s.K, lda, ldb, s.N, nil)}
	k.fwdTasks = newTasks(productTask(k.fwd))
	// dA = dC·op(B)ᵀ, stored transposed with TransA: op(B)·dCᵀ.
	if !s.TransA {
		k.da = newProduct(false, !s.TransB, s.M, s.K, s.N, s.N, ldb, lda, nil)
	} else {
		k.da = newProduct(s.TransB, true, s.K, s.M, s.N, ldb, s.N, lda, nil)
	}
	// dB = op(A)ᵀ·dC, stored transposed with TransB: dCᵀ·op(A).
	if !s.TransB {
		k.db = newProduct(!s.TransA, false, s.K, s.N, s.M, lda, s.N, ldb, nil)
	} else {
		k.db = newProduct(true, s.TransA, s.N, s.K, s.M, s.N, lda, ldb, nil)
	}
	k.bwdTasks = newTasks(productTask(k.da), productTask(k.db))
	return k
}

// gemm32 is the tiled float32 product; its backward runs the tiles of both
// gradients as one parallel loop.
type gemm32 struct {
	s                  GEMM
	fwd, da, db        *product
	fwdTasks, bwdTasks *tasks
}

func (k *gemm32) Forward(in [][]float32, out []float32) {
	k.fwd.set(in[0], in[1], out)
	k.fwdTasks.run()
}

func (k *gemm32) Backward(in [][]float32, dc []float32, din [][]float32) {
	k.bwdTasks.list[0].n, k.bwdTasks.list[1].n = 0, 0
	if din[0] != nil {
		if !k.s.TransA {
			k.da.set(dc, in[1], din[0])
		} else {
			k.da.set(in[1], dc, din[0])
		}
		k.bwdTasks.list[0].n = k.da.tiles()
	}
	if din[1] != nil {
		if !k.s.TransB {
			k.db.set(in[0], dc, din[1])
		} else {
			k.db.set(dc, in[0], din[1])
		}
		k.bwdTasks.list[1].n = k.db.tiles()
	}
	k.bwdTasks.run()
}

func (s GEMM) ref() Kernel[[]float64] { return gemmRef{s} }

// gemmRef is the float64 reference: gonum's dgemm, one call per product.
type gemmRef struct{ s GEMM }

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

func (k gemmRef) Forward(in [][]float64, out []float64) {
	s := k.s
	lda, ldb := s.ld()
	gonum.Implementation{}.Dgemm(trans(s.TransA), trans(s.TransB), s.M, s.N, s.K, 1, in[0], lda, in[1], ldb, 0, out, s.N)
}

func (k gemmRef) Backward(in [][]float64, dc []float64, din [][]float64) {
	s, g := k.s, gonum.Implementation{}
	lda, ldb := s.ld()
	if din[0] != nil {
		if !s.TransA {
			g.Dgemm(blas.NoTrans, trans(!s.TransB), s.M, s.K, s.N, 1, dc, s.N, in[1], ldb, 0, din[0], lda)
		} else {
			g.Dgemm(trans(s.TransB), blas.Trans, s.K, s.M, s.N, 1, in[1], ldb, dc, s.N, 0, din[0], lda)
		}
	}
	if din[1] != nil {
		if !s.TransB {
			g.Dgemm(trans(!s.TransA), blas.NoTrans, s.K, s.N, s.M, 1, in[0], lda, dc, s.N, 0, din[1], ldb)
		} else {
			g.Dgemm(blas.Trans, trans(s.TransA), s.N, s.K, s.M, 1, dc, s.N, in[0], lda, 0, din[1], ldb)
		}
	}
}
