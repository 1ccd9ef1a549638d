package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Team runs the phases of one computation on a fixed set of goroutines that
// spin between phases rather than sleep, so that a phase starts and ends in
// about a microsecond instead of a goroutine wake-up: for loops too short for
// Job, such as the layers of a decoder's one-token step. Run has Job.Run's
// contract (items, worker slots, the caller as slot 0). Members that find no
// phase for a while (teamSpins checks, tens of microseconds) sleep until the
// next Run. A Team runs one phase at a time; Close ends its goroutines.
type Team struct {
	size     int
	gen      atomic.Uint64 // phase number; a member works when it moves
	body     Body
	items    int64
	next     atomic.Int64
	arrived  atomic.Int64 // members done with the current phase
	closed   atomic.Bool
	sleepers atomic.Int32
	mu       sync.Mutex
	wake     *sync.Cond
}

// teamSpins is how many times a member checks for a new phase before it sleeps.
const teamSpins = 1 << 14

// NewTeam starts a team of workers members, the caller of Run included
// (0 or less: GOMAXPROCS).
func NewTeam(workers int) *Team {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	t := &Team{size: workers}
	t.wake = sync.NewCond(&t.mu)
	for w := 1; w < workers; w++ {
		go t.member(w, 0)
	}
	return t
}

// Size is the number of members, the caller included.
func (t *Team) Size() int { return t.size }

// Run executes items [0, n) of b on the members and returns when all are done.
func (t *Team) Run(b Body, n int) {
	if n <= 0 {
		return
	}
	if t.size == 1 || n == 1 {
		for i := range n {
			b.Item(0, i)
		}
		return
	}
	t.body, t.items = b, int64(n)
	t.next.Store(0)
	t.arrived.Store(0)
	t.gen.Add(1) // publishes body and items to the members
	if t.sleepers.Load() > 0 {
		t.mu.Lock()
		t.wake.Broadcast()
		t.mu.Unlock()
	}
	t.work(0)
	for spins := 0; t.arrived.Load() < int64(t.size-1); spins++ {
		if spins%256 == 255 {
			runtime.Gosched()
		}
	}
	t.body = nil
}

// Close stops the members. The Team must not be used afterwards.
func (t *Team) Close() {
	t.closed.Store(true)
	t.gen.Add(1)
	t.mu.Lock()
	t.wake.Broadcast()
	t.mu.Unlock()
}

func (t *Team) work(w int) {
	for i := t.next.Add(1) - 1; i < t.items; i = t.next.Add(1) - 1 {
		t.body.Item(w, int(i))
	}
}

// member runs slot w of every phase after phase last.
func (t *Team) member(w int, last uint64) {
	for {
		for spins := 0; t.gen.Load() == last; spins++ {
			switch {
			case spins >= teamSpins:
				t.mu.Lock()
				t.sleepers.Add(1)
				for t.gen.Load() == last {
					t.wake.Wait()
				}
				t.sleepers.Add(-1)
				t.mu.Unlock()
			case spins%256 == 255:
				runtime.Gosched()
			}
		}
		last = t.gen.Load()
		if t.closed.Load() {
			return
		}
		t.work(w)
		t.arrived.Add(1)
	}
}
