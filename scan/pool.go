package scan

import (
	"sync"
	"sync/atomic"
)

// The kernels run their phases on package-wide helper goroutines that wait for work between
// calls, so a call spawns nothing and allocates nothing.

// runner executes item i of its current phase using the scratch of worker slot w.
type runner interface{ item(w, i int) }

// job is one phase: items [0, n) of r, handed out in any order to the worker slots. Items write
// disjoint memory and their results do not depend on the slot, so the order never shows.
type job struct {
	r    runner
	n    int64
	next atomic.Int64
	wg   sync.WaitGroup
}

type task struct {
	j *job
	w int
}

var helpers struct {
	sync.Mutex
	n     int
	tasks chan task
}

func init() { helpers.tasks = make(chan task) }

// ensureHelpers starts helper goroutines until there are at least m.
func ensureHelpers(m int) {
	helpers.Lock()
	defer helpers.Unlock()
	for ; helpers.n < m; helpers.n++ {
		go func() {
			for t := range helpers.tasks {
				t.j.work(t.w)
				t.j.wg.Done()
			}
		}()
	}
}

func (j *job) work(w int) {
	for i := j.next.Add(1) - 1; i < j.n; i = j.next.Add(1) - 1 {
		j.r.item(w, int(i))
	}
}

// run executes items [0, n) of r on min(workers, n) slots: the caller's (slot 0) and helpers'.
func (j *job) run(r runner, n, workers int) {
	w := min(workers, n)
	j.r, j.n = r, int64(n)
	j.next.Store(0)
	if w > 1 {
		ensureHelpers(w - 1)
		j.wg.Add(w - 1)
		for k := 1; k < w; k++ {
			helpers.tasks <- task{j, k}
		}
	}
	j.work(0)
	j.wg.Wait()
	j.r = nil
}
