package parallel

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestTeamEveryItemOnce runs phases of different sizes back to back, and
// after the members have gone to sleep.
func TestTeamEveryItemOnce(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		tm := NewTeam(workers)
		for phase, n := range []int{1, 2, 7, 64, 1000, 3, 500} {
			if phase == 5 {
				time.Sleep(20 * time.Millisecond) // members sleep
			}
			c := &counter{hits: make([]atomic.Int32, n)}
			tm.Run(c, n)
			for i := range c.hits {
				if got := c.hits[i].Load(); got != 1 {
					t.Fatalf("workers=%d n=%d: item %d ran %d times, want 1", workers, n, i, got)
				}
			}
			if got := int(c.maxSlot.Load()); got >= tm.Size() {
				t.Fatalf("workers=%d n=%d: slot %d used, want < %d", workers, n, got, tm.Size())
			}
		}
		tm.Close()
	}
}

// TestTeamClose: Close ends the members, asleep or spinning.
func TestTeamClose(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		tm := NewTeam(4)
		tm.Run(&counter{hits: make([]atomic.Int32, 10)}, 10)
		tm.Close()
	}
	tm := NewTeam(4)
	time.Sleep(20 * time.Millisecond)
	tm.Close()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before the teams", n, before)
	}
}

type noop struct{}

func (noop) Item(int, int) {}

// BenchmarkTeamPhase is the cost of one phase of GOMAXPROCS items.
func BenchmarkTeamPhase(b *testing.B) {
	tm := NewTeam(0)
	defer tm.Close()
	n := tm.Size()
	b.ReportAllocs()
	for b.Loop() {
		tm.Run(noop{}, n)
	}
}

// BenchmarkJobPhase is the same with a Job, for comparison.
func BenchmarkJobPhase(b *testing.B) {
	var j Job
	n := runtime.GOMAXPROCS(0)
	b.ReportAllocs()
	for b.Loop() {
		j.Run(noop{}, n, 0)
	}
}
