package parallel

import (
	"runtime"
	"sync/atomic"
)

// Waiting. A goroutine that waits for work or for the end of a loop spins on an atomic for a
// while (spinChecks checks, tens of microseconds; runtime.Gosched every yieldEvery of them, a
// few times in all, so that other goroutines of its P run without making it change cores
// often) and then parks on a channel. The kernels of a training
// step run one loop after another microseconds apart: spinning helpers take the next loop's
// items at once, where parked ones would each need a wake-up by the scheduler (tens of
// microseconds on a busy host, started one after another), and an idle process still sleeps.
var (
	spinChecks = 1 << 15
	yieldEvery = 1 << 13
)

// worker is a goroutine that runs the tasks posted to it, one at a time. A task posted to a
// worker that has not started it yet can be taken back (revoke): a caller that has run every
// item itself never waits for a goroutine the operating system has not scheduled (a loaded
// machine), only for those already running items.
type worker struct {
	state atomic.Int32
	t     task
	slot  int
	wake  chan struct{} // a post to a parked worker
	pool  *helpers      // where the worker goes back after a task (Job's helpers), or nil
	_     [64]byte      // keep the next worker's state off this cache line
}

// task is a loop a worker runs part of: items runs the items of worker slot w, done says that
// the slot has finished.
type task interface {
	items(w int)
	done()
}

// States of a worker.
const (
	waiting int32 = iota // spinning for a task
	parked               // blocked on wake
	posted               // a task is there to take
	running              // running a task
)

func newWorker(pool *helpers) *worker {
	k := &worker{wake: make(chan struct{}, 1), pool: pool}
	go k.loop()
	return k
}

// post gives a waiting or parked worker task t as slot w; t == nil ends the worker.
func (k *worker) post(t task, w int) {
	k.t, k.slot = t, w
	if k.state.CompareAndSwap(waiting, posted) {
		return
	}
	k.state.Store(posted) // it is parked, and stays so until woken
	k.wake <- struct{}{}
}

// revoke takes back a posted task the worker has not started, and reports whether it did.
func (k *worker) revoke() bool {
	if !k.state.CompareAndSwap(posted, waiting) {
		return false
	}
	k.t = nil // no new post before the caller hands the worker on
	return true
}

func (k *worker) loop() {
	for {
		k.await()
		t, w := k.t, k.slot
		k.t = nil // hold nothing of the caller's between tasks
		if t == nil {
			return
		}
		t.items(w)
		k.state.Store(waiting)
		if k.pool != nil {
			k.pool.put(k)
		}
		t.done()
	}
}

// await returns once the worker has taken a posted task (state running).
func (k *worker) await() {
	for i := 1; ; i++ {
		switch k.state.Load() {
		case posted:
			if k.state.CompareAndSwap(posted, running) {
				return
			}
		case waiting:
			if i%yieldEvery == 0 {
				runtime.Gosched()
			}
			if i >= spinChecks && k.state.CompareAndSwap(waiting, parked) {
				<-k.wake // then posted, or waiting again if the task was revoked
				i = 0
			}
		}
	}
}

// latch counts the slots of a loop still running; its owner waits for none.
type latch struct {
	pending atomic.Int64
	parked  atomic.Int32
	wake    chan struct{}
}

// arm expects n calls of done.
func (l *latch) arm(n int) {
	if l.wake == nil {
		l.wake = make(chan struct{}, 1)
	}
	l.pending.Store(int64(n))
}

func (l *latch) done() {
	if l.pending.Add(-1) == 0 && l.parked.CompareAndSwap(1, 0) {
		l.wake <- struct{}{}
	}
}

// wait returns when every armed slot is done.
func (l *latch) wait() {
	for i := 1; l.pending.Load() > 0; i++ {
		if i%yieldEvery == 0 {
			runtime.Gosched()
		}
		if i >= spinChecks {
			l.parked.Store(1)
			if l.pending.Load() == 0 && l.parked.CompareAndSwap(1, 0) {
				return // the last done came before it could see the flag
			}
			<-l.wake
			return
		}
	}
}
