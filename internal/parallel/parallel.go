// Package parallel is the project's one parallel-for: items [0, n) of a loop body run on
// the calling goroutine and on helper goroutines that wait between calls (spinning for some
// tens of microseconds, then parked), so a call spawns nothing and allocates nothing once
// warm, and loops that follow each other closely start without waking anyone.
//
// Determinism is the caller's part of the contract, and the reason this package hands out
// items rather than ranges of its own choosing: a body cuts its work into items fixed by
// the shape of the problem (never by the number of workers), each item writes memory no
// other item writes, and sums across items are reduced afterwards in item order. The
// worker slot w passed to Item only selects scratch memory. Results are then bitwise the
// same for every GOMAXPROCS.
//
// Team has the same contract for phases of a few microseconds (a decoder's one-token step):
// a fixed set of goroutines, each phase on as many of them as its work needs, items dealt
// out in fixed runs so that each member keeps working on the same data.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Body is the work of one parallel loop: Item(w, i) runs item i using the scratch of worker
// slot w, with 0 ≤ w < the slot count of the call (see Workers).
type Body interface{ Item(w, i int) }

// BodyFunc is a function as a Body. Converting one to a Body allocates nothing, so a kernel
// keeps its loop bodies as method values made once (f := k.item) and runs them hot.
type BodyFunc func(w, i int)

// Item calls f(w, i).
func (f BodyFunc) Item(w, i int) { f(w, i) }

// Job runs loops. Its zero value is ready; keep one per kernel (or use Run, which pools
// them). A Job runs one loop at a time.
type Job struct {
	b     Body
	n     int64
	next  atomic.Int64
	latch latch
	ks    []*worker // the helpers of the running loop
}

// Workers returns how many slots a loop of n items uses with the given worker count
// (0 or less means GOMAXPROCS): at least 1, at most n.
func Workers(n, workers int) int {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return max(1, min(workers, n))
}

// Run executes items [0, n) of b on Workers(n, workers) slots, the caller being slot 0,
// and returns when all are done. Items are handed out in increasing order to whichever
// slot is free. A body may itself call Run (nested loops get helpers of their own).
func (j *Job) Run(b Body, n, workers int) {
	if n <= 0 {
		return
	}
	w := Workers(n, workers)
	j.b, j.n = b, int64(n)
	j.next.Store(0)
	if w > 1 {
		j.latch.arm(w - 1)
		j.ks = j.ks[:0]
		for s := 1; s < w; s++ {
			k := pool.get()
			k.post(j, s)
			j.ks = append(j.ks, k)
		}
	}
	j.items(0)
	if w > 1 {
		for _, k := range j.ks {
			if k.revoke() { // it never started: the items are done
				pool.put(k)
				j.latch.done()
			}
		}
		j.latch.wait()
	}
	j.b = nil
}

func (j *Job) items(w int) {
	for i := j.next.Add(1) - 1; i < j.n; i = j.next.Add(1) - 1 {
		j.b.Item(w, int(i))
	}
}

func (j *Job) done() { j.latch.done() }

var jobs = sync.Pool{New: func() any { return new(Job) }}

// Run executes items [0, n) of b as Job.Run does, with a pooled Job.
func Run(b Body, n, workers int) {
	j := jobs.Get().(*Job)
	j.Run(b, n, workers)
	jobs.Put(j)
}

// For runs f(w, lo, hi) over [0, n) cut into blocks [lo, hi) of bs elements (the last one
// shorter), on up to GOMAXPROCS slots. The blocks depend only on n and bs. The closure
// makes For allocate: hot paths implement Body instead.
func For(n, bs int, f func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	bs = max(1, bs)
	Run(blocks{n, bs, f}, (n+bs-1)/bs, 0)
}

type blocks struct {
	n, bs int
	f     func(w, lo, hi int)
}

func (b blocks) Item(w, i int) { b.f(w, i*b.bs, min(b.n, (i+1)*b.bs)) }

// pool keeps the helpers of Jobs that wait for work (see worker). A loop takes idle ones
// or, when all are busy (nested loops, concurrent callers), starts new ones, so no caller
// ever waits for a helper to free up. The helper that finished last is handed out first: it
// is the one most likely still spinning.
var pool helpers

type helpers struct {
	sync.Mutex
	idle []*worker
}

func (p *helpers) get() *worker {
	p.Lock()
	if n := len(p.idle); n > 0 {
		k := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.Unlock()
		return k
	}
	p.Unlock()
	return newWorker(p)
}

func (p *helpers) put(k *worker) {
	p.Lock()
	p.idle = append(p.idle, k)
	p.Unlock()
}
