package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counter records how often each item ran and the largest slot seen.
type counter struct {
	hits    []atomic.Int32
	maxSlot atomic.Int32
}

func (c *counter) Item(w, i int) {
	c.hits[i].Add(1)
	for {
		m := c.maxSlot.Load()
		if int32(w) <= m || c.maxSlot.CompareAndSwap(m, int32(w)) {
			return
		}
	}
}

func TestRunEveryItemOnce(t *testing.T) {
	for _, n := range []int{1, 2, 7, 64, 1000} {
		for _, workers := range []int{0, 1, 2, 3, 16} {
			c := &counter{hits: make([]atomic.Int32, n)}
			Run(c, n, workers)
			for i := range c.hits {
				if got := c.hits[i].Load(); got != 1 {
					t.Fatalf("n=%d workers=%d: item %d ran %d times, want 1", n, workers, i, got)
				}
			}
			if got, limit := int(c.maxSlot.Load()), Workers(n, workers); got >= limit {
				t.Fatalf("n=%d workers=%d: slot %d used, want < %d", n, workers, got, limit)
			}
		}
	}
}

func TestWorkers(t *testing.T) {
	g := runtime.GOMAXPROCS(0)
	for _, c := range []struct{ n, workers, want int }{
		{10, 3, 3}, {2, 8, 2}, {0, 4, 1}, {100, 0, min(100, g)}, {5, -1, min(5, g)},
	} {
		if got := Workers(c.n, c.workers); got != c.want {
			t.Errorf("Workers(%d, %d) = %d, want %d", c.n, c.workers, got, c.want)
		}
	}
}

// nested runs an inner loop from every item of an outer one.
type nested struct{ sum []atomic.Int64 }

func (n *nested) Item(_, i int) {
	For(100, 7, func(_, lo, hi int) {
		for k := lo; k < hi; k++ {
			n.sum[i].Add(int64(k))
		}
	})
}

func TestNestedAndConcurrentRuns(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := &nested{sum: make([]atomic.Int64, 32)}
			Run(n, 32, 8)
			for i := range n.sum {
				if got := n.sum[i].Load(); got != 4950 {
					t.Errorf("item %d: inner sum %d, want 4950", i, got)
				}
			}
		}()
	}
	wg.Wait()
}

func TestForBlocks(t *testing.T) {
	var seen [23]atomic.Int32
	For(23, 5, func(_, lo, hi int) {
		if lo%5 != 0 || hi != min(23, lo+5) {
			t.Errorf("block [%d, %d) is not fixed by n=23, bs=5", lo, hi)
		}
		for i := lo; i < hi; i++ {
			seen[i].Add(1)
		}
	})
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Fatalf("element %d covered %d times", i, seen[i].Load())
		}
	}
}

// sink is a body with no per-call state, for the allocation test.
type sink struct{ x []float64 }

func (s *sink) Item(_, i int) { s.x[i] += 1 }

func TestRunDoesNotAllocate(t *testing.T) {
	s := &sink{x: make([]float64, 256)}
	var j Job
	j.Run(s, len(s.x), 4) // start the helpers
	settle(t)
	if a := testing.AllocsPerRun(50, func() { j.Run(s, len(s.x), 4) }); a != 0 {
		t.Errorf("Job.Run allocates %v times per call, want 0", a)
	}
}

// settle waits until every idle helper has parked: a helper parking for the first time may
// allocate (the runtime's record of a blocked goroutine), which a test counting the
// allocations of Run must not see.
func settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pool.Lock()
		n := 0
		for _, k := range pool.idle {
			if k.state.Load() != parked {
				n++
			}
		}
		pool.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("idle helpers still spinning after 5 s")
}

func BenchmarkRun(b *testing.B) {
	s := &sink{x: make([]float64, 64)}
	var j Job
	b.ReportAllocs()
	for b.Loop() {
		j.Run(s, len(s.x), 0)
	}
}

// big is a body that owns memory, to see when it is collected.
type big struct{ buf []byte }

func (b *big) Item(_, i int) { b.buf[i]++ }

// TestNothingRetained: once a loop has returned, neither the Job's helpers nor a Team's members
// keep its body reachable (a kernel's buffers are freed when the kernel is), whether they ran
// items or had their task taken back.
func TestNothingRetained(t *testing.T) {
	tm := NewTeam(4)
	defer tm.Close()
	for _, run := range []func(b Body, n int){
		func(b Body, n int) { Run(b, n, 4) },
		func(b Body, n int) { tm.Run(b, n, 0) },
	} {
		freed := make(chan struct{}, 8)
		for range 8 {
			b := &big{buf: make([]byte, 1<<16)}
			runtime.AddCleanup(b, func(ch chan struct{}) { ch <- struct{}{} }, freed)
			run(b, len(b.buf)/1024)
		}
		deadline := time.Now().Add(5 * time.Second)
		for n := 0; n < 8; {
			runtime.GC()
			select {
			case <-freed:
				n++
			case <-time.After(10 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("%d of 8 bodies still reachable after their loops", 8-n)
				}
			}
		}
	}
}
