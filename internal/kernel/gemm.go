package kernel

import (
	"fmt"
	"sync"
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

// The cut of products. A product of m·n·k multiply-adds runs as
// min(tileCount, m·n·k/tileWork) items or more (fewer than twice as many):
// first k is cut into chunks of at least chunkMin (a weight gradient, whose k
// is the number of tokens), then C into tiles, by halving the longer side of
// the tile down to tileMin (square-ish tiles keep small the repacking of A
// and B, a fraction 1/tm + 1/tn of the work, which each tile does anew).
// Each item is one single-threaded BLAS call. Chunk 0 writes C and chunk c a
// scratch copy of it; a second loop adds the copies to C in chunk order. So C
// depends only on m, n and k, never on the number of goroutines.
//
// Measured on one core in CPU seconds (OpenBLAS's Cooperlake kernel, a loaded
// 2-core box), the cut products ran at 86–97% of one call's rate on the bench
// model's shapes; cutting C alone had cost 33–55% on the weight gradients
// (512, 256, 4096), (256, 256, 4096) and (48, 512, 4096).
const (
	tileMin   = 64
	tileWork  = 1 << 18
	tileCount = 32
	chunkMin  = 512
)

// productCut returns the tile sides (tm, tn) and the chunk length kc of an
// m×n×k product.
func productCut(m, n, k int) (tm, tn, kc int) { return cutInto(m, n, k, tileCount) }

// cutInto is productCut aiming at count items.
func cutInto(m, n, k, count int) (tm, tn, kc int) {
	want := max(1, min(count, m*n*k/tileWork))
	chunks := max(1, min(want, k/chunkMin))
	kc = (blocks(k, chunks) + 15) / 16 * 16
	tm, tn = m, n
	half := func(x int) int { return (blocks(x, 2) + 15) / 16 * 16 }
	for blocks(m, tm)*blocks(n, tn)*blocks(k, kc) < want {
		switch {
		case tm >= tn && tm >= 2*tileMin:
			tm = half(tm)
		case tn >= 2*tileMin:
			tn = half(tn)
		case tm >= 2*tileMin:
			tm = half(tm)
		default:
			return tm, tn, kc
		}
	}
	return tm, tn, kc
}

// product is one planned C = op(A)·op(B) on row-major operands with leading
// dimensions lda, ldb, ldc, cut into tiles of C and chunks of k. With prep,
// each tile of C is first filled by prep(i0, i1, j0, j1) and the product is
// added to it.
type product struct {
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int
	tm, tn, kc     int
	prep           func(i0, i1, j0, j1 int)
	accum          bool        // the next run adds the product to C (set per run)
	calls          []*tileCall // OpenBLAS argument blocks, one per item
	a, b, c        []float32   // the operands of the next run
	part           []float32   // (chunks−1, m, n): the other chunks' products, from the scratch pool
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
	tm, tn, kc := productCut(m, n, k)
	return newCutProduct(transA, transB, m, n, k, lda, ldb, ldc, tm, tn, kc, prep)
}

// newCutProduct is newProduct with the given tiles and chunks.
func newCutProduct(transA, transB bool, m, n, k, lda, ldb, ldc, tm, tn, kc int, prep func(i0, i1, j0, j1 int)) *product {
	p := &product{transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, tm: tm, tn: tn, kc: kc, prep: prep}
	if loadedBLAS().sgemm != 0 {
		p.calls = make([]*tileCall, p.items())
		for t := range p.calls {
			i0, i1, j0, j1, k0, k1 := p.item(t)
			p.calls[t] = p.newCall(i1-i0, j1-j0, k1-k0, k0 == 0)
		}
	}
	return p
}

// newCall sets up the arguments of an item of mt×nt×kt: row-major
// C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so sgemm_ gets B first.
// The first chunk writes C (adding to it with prep or accum: run sets beta),
// the others their copy.
func (p *product) newCall(mt, nt, kt int, first bool) *tileCall {
	c := &tileCall{ta: 'N', tb: 'N', m: int32(nt), n: int32(mt), k: int32(kt),
		lda: int32(p.ldb), ldb: int32(p.lda), ldc: int32(p.ldc), alpha: 1}
	if !first {
		c.ldc = int32(p.n)
	}
	if p.transB {
		c.ta = 'T'
	}
	if p.transA {
		c.tb = 'T'
	}
	ptr := func(x unsafe.Pointer) uintptr { return uintptr(x) }
	c.argv = [13]uintptr{ptr(unsafe.Pointer(&c.ta)), ptr(unsafe.Pointer(&c.tb)), ptr(unsafe.Pointer(&c.m)), ptr(unsafe.Pointer(&c.n)),
		ptr(unsafe.Pointer(&c.k)), ptr(unsafe.Pointer(&c.alpha)), 0, ptr(unsafe.Pointer(&c.lda)), 0, ptr(unsafe.Pointer(&c.ldb)),
		ptr(unsafe.Pointer(&c.beta)), 0, ptr(unsafe.Pointer(&c.ldc))}
	return c
}

func (p *product) chunks() int { return blocks(p.k, p.kc) }
func (p *product) tiles() int  { return blocks(p.m, p.tm) * blocks(p.n, p.tn) }
func (p *product) items() int  { return p.tiles() * p.chunks() }

// item returns the rows and columns of C and the range of k of item t: the
// tiles in row-major order, chunk by chunk.
func (p *product) item(t int) (i0, i1, j0, j1, k0, k1 int) {
	nt, nj := p.tiles(), blocks(p.n, p.tn)
	ch, t := t/nt, t%nt
	i0, j0, k0 = t/nj*p.tm, t%nj*p.tn, ch*p.kc
	return i0, min(p.m, i0+p.tm), j0, min(p.n, j0+p.tn), k0, min(p.k, k0+p.kc)
}

// set gives the product its operands for the next run, which overwrites C
// (after prep, if any) unless accumulate is called.
func (p *product) set(a, b, c []float32) { p.a, p.b, p.c, p.accum = a, b, c, false }

// accumulate makes the next run add the product to C.
func (p *product) accumulate() { p.accum = true }

// begin takes the scratch the chunks need; end gives it back.
func (p *product) begin() {
	if p.chunks() > 1 {
		p.part = getScratch((p.chunks() - 1) * p.m * p.n)
	}
}

func (p *product) end() {
	if p.part != nil {
		putScratch(p.part)
		p.part = nil
	}
}

// run computes item t.
func (p *product) run(_, t int) {
	i0, i1, j0, j1, k0, k1 := p.item(t)
	first := k0 == 0
	if first && p.prep != nil {
		p.prep(i0, i1, j0, j1)
	}
	ao, bo := i0*p.lda+k0, k0*p.ldb+j0
	if p.transA {
		ao = k0*p.lda + i0
	}
	if p.transB {
		bo = j0*p.ldb + k0
	}
	c, co, ldc := p.c, i0*p.ldc+j0, p.ldc
	if !first {
		c, co, ldc = p.part, (k0/p.kc-1)*p.m*p.n+i0*p.n+j0, p.n
	}
	beta := float32(0)
	if first && (p.prep != nil || p.accum) {
		beta = 1
	}
	if p.calls == nil {
		gonum.Implementation{}.Sgemm(trans(p.transA), trans(p.transB), i1-i0, j1-j0, k1-k0, 1, p.a[ao:], p.lda, p.b[bo:], p.ldb, beta, c[co:], ldc)
		return
	}
	call := p.calls[t]
	call.beta = beta
	call.argv[6] = uintptr(unsafe.Pointer(&p.b[bo]))
	call.argv[8] = uintptr(unsafe.Pointer(&p.a[ao]))
	call.argv[11] = uintptr(unsafe.Pointer(&c[co]))
	purego.SyscallN(loadedBLAS().sgemm, call.argv[:]...)
}

// reduceRows is the number of rows of C in one item of the chunks' sum.
const reduceRows = 32

// reduceItems is the number of items of the chunks' sum (0 with one chunk).
func (p *product) reduceItems() int {
	if p.chunks() == 1 {
		return 0
	}
	return blocks(p.m, reduceRows)
}

// reduce adds the other chunks' products to rows [32i, 32i+32) of C, chunk
// by chunk.
func (p *product) reduce(_, i int) {
	r0, r1 := span(i, reduceRows, p.m)
	for ch := 1; ch < p.chunks(); ch++ {
		part := p.part[(ch-1)*p.m*p.n:]
		for r := r0; r < r1; r++ {
			dst, src := p.c[r*p.ldc:r*p.ldc+p.n], part[r*p.n:(r+1)*p.n]
			for j, v := range src {
				dst[j] += v
			}
		}
	}
}

// scratch is a pool of float32 buffers for the chunks of products: a kernel
// takes one for its run and gives it back, so kernels that run one after
// another share them and nothing is allocated once warm.
var scratch struct {
	sync.Mutex
	free [][]float32
}

// getScratch returns a buffer of n elements (contents undefined).
func getScratch(n int) []float32 {
	scratch.Lock()
	defer scratch.Unlock()
	best := -1
	for i, b := range scratch.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(scratch.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]float32, n)
	}
	b := scratch.free[best]
	scratch.free = append(scratch.free[:best], scratch.free[best+1:]...)
	return b[:n]
}

func putScratch(b []float32) {
	scratch.Lock()
	scratch.free = append(scratch.free, b)
	scratch.Unlock()
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

// productTask is the task that runs every item of p; reduceTask the one that
// adds its chunks, in a loop after it.
func productTask(p *product) task { return task{p.items(), p.run} }
func reduceTask(p *product) task  { return task{p.reduceItems(), p.reduce} }

// runProducts runs the items of the tasks of ts, whose products are ps (nil
// ones are idle), and then the sums of their chunks, the tasks of sums.
func runProducts(ts, sums *tasks, ps ...*product) {
	for _, p := range ps {
		if p != nil {
			p.begin()
		}
	}
	ts.run()
	sums.run()
	for _, p := range ps {
		if p != nil {
			p.end()
		}
	}
}

func (s GEMM) CPUKernel() Kernel[[]float32] {
	lda, ldb := s.ld()
	k := &gemm32{s: s, fwd: newProduct(s.TransA, s.TransB, s.M, s.N, s.K, lda, ldb, s.N, nil)}
	k.fwdTasks, k.fwdSums = newTasks(productTask(k.fwd)), newTasks(reduceTask(k.fwd))
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
	k.bwdSums = newTasks(reduceTask(k.da), reduceTask(k.db))
	return k
}

// gemm32 is the float32 product; its backward runs the items of both
// gradients as one parallel loop, then the sums of their chunks as another.
type gemm32 struct {
	s                 GEMM
	fwd, da, db       *product
	fwdTasks, fwdSums *tasks
	bwdTasks, bwdSums *tasks
}

func (k *gemm32) Forward(in [][]float32, out []float32) {
	k.fwd.set(in[0], in[1], out)
	runProducts(k.fwdTasks, k.fwdSums, k.fwd)
}

func (k *gemm32) Backward(in [][]float32, dc []float32, din [][]float32) {
	t, sums := k.bwdTasks.list, k.bwdSums.list
	t[0].n, t[1].n, sums[0].n, sums[1].n = 0, 0, 0, 0
	da, db := k.da, k.db
	if din[0] != nil {
		if !k.s.TransA {
			da.set(dc, in[1], din[0])
		} else {
			da.set(in[1], dc, din[0])
		}
		t[0].n, sums[0].n = da.items(), da.reduceItems()
	} else {
		da = nil
	}
	if din[1] != nil {
		if !k.s.TransB {
			db.set(in[0], dc, din[1])
		} else {
			db.set(dc, in[0], din[1])
		}
		t[1].n, sums[1].n = db.items(), db.reduceItems()
	} else {
		db = nil
	}
	runProducts(k.bwdTasks, k.bwdSums, da, db)
}

func (s GEMM) ReferenceKernel() Kernel[[]float64] { return gemmRef{s} }

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
