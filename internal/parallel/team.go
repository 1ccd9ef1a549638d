package parallel

import (
	"runtime"
	"sync/atomic"
)

// Team runs the phases of one computation on a fixed set of goroutines, for loops too short
// to spread over whichever helpers are free: the phases of a decoder's one-token step, a few
// microseconds each. Run has Job.Run's contract (items, worker slots, the caller as slot 0)
// with two differences. A phase names how many members take part, so that a phase with
// little work runs on few cores and the others stay out of its barrier. And items are dealt
// out in fixed ranges, member w taking the w-th of `workers` equal runs of items before it
// helps the others: a member works on the same items phase after phase, so the weights those
// items read stay in its core's cache. Members wait for a phase as Job's helpers do (spinning,
// then parked). A Team runs one phase at a time; Close ends its goroutines.
type Team struct {
	members []*worker // slots 1 … Size−1
	body    Body
	n       int
	active  int
	next    []cursor // per slot: the next item of its run
	latch   latch
}

// cursor is an item counter on a cache line of its own.
type cursor struct {
	atomic.Int64
	_ [56]byte
}

// NewTeam starts a team of workers members, the caller of Run included
// (0 or less: GOMAXPROCS).
func NewTeam(workers int) *Team {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	t := &Team{next: make([]cursor, workers)}
	for range workers - 1 {
		t.members = append(t.members, newWorker(nil))
	}
	return t
}

// Size is the number of members, the caller included.
func (t *Team) Size() int { return len(t.members) + 1 }

// Run executes items [0, n) of b on min(workers, Size, n) members (workers ≤ 0: Size) and
// returns when all are done.
func (t *Team) Run(b Body, n, workers int) {
	if n <= 0 {
		return
	}
	if workers <= 0 {
		workers = t.Size()
	}
	a := min(workers, t.Size(), n)
	if a == 1 {
		for i := range n {
			b.Item(0, i)
		}
		return
	}
	t.body, t.n, t.active = b, n, a
	for w := range a {
		t.next[w].Store(int64(w * n / a))
	}
	t.latch.arm(a - 1)
	for w := 1; w < a; w++ {
		t.members[w-1].post(t, w)
	}
	t.items(0)
	for _, k := range t.members[:a-1] {
		if k.revoke() { // it never started: its items were taken by the others
			t.latch.done()
		}
	}
	t.latch.wait()
	t.body = nil
}

// items runs slot w's run of items, then takes items left in the other runs.
func (t *Team) items(w int) {
	a := t.active
	for v := range a {
		s := (w + v) % a
		c, hi := &t.next[s], int64((s+1)*t.n/a)
		for i := c.Add(1) - 1; i < hi; i = c.Add(1) - 1 {
			t.body.Item(w, int(i))
		}
	}
}

func (t *Team) done() { t.latch.done() }

// Close stops the members. The Team must not be used afterwards.
func (t *Team) Close() {
	for _, k := range t.members {
		k.post(nil, 0)
	}
	t.members = nil
}
