package parallel

import (
	"runtime"
	"sync"
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
			tm.Run(c, n, 0)
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
		tm.Run(&counter{hits: make([]atomic.Int32, 10)}, 10, 0)
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

// spin is a body whose items each take about a quarter of a microsecond.
type spin struct{ sink []float64 }

func (s *spin) Item(w, i int) {
	x := float64(i)
	for range 100 {
		x = x*0.999 + 1
	}
	s.sink[w] += x
}

// BenchmarkBarrier is the time of one loop of 4·GOMAXPROCS items of about a quarter of a
// microsecond each (a fork, a microsecond of work on every core, a join): with a Team and
// with a Job; with waiting goroutines that spin before they park (as
// shipped) and that park at once; on an otherwise idle process and with GOMAXPROCS/2
// goroutines computing beside it (a loaded machine).
func BenchmarkBarrier(b *testing.B) {
	n := runtime.GOMAXPROCS(0)
	body := &spin{make([]float64, n)}
	for _, loaded := range []bool{false, true} {
		for _, spin := range []bool{true, false} {
			name := map[bool]string{true: "spin", false: "park"}[spin]
			name += map[bool]string{true: "-loaded", false: "-idle"}[loaded]
			run := func(b *testing.B, phase func()) {
				defer func(c int) { spinChecks = c }(spinChecks)
				if !spin {
					spinChecks = 0
				}
				var stop atomic.Bool
				var wg sync.WaitGroup
				if loaded {
					for range n / 2 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							x := 1.0
							for i := 0; !stop.Load(); i++ {
								x = x*1.0000001 + 1e-9
								if i%(1<<16) == 0 {
									runtime.Gosched()
								}
							}
							_ = x
						}()
					}
				}
				phase() // start the goroutines
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					phase()
				}
				b.StopTimer()
				stop.Store(true)
				wg.Wait()
			}
			b.Run("team/"+name, func(b *testing.B) {
				tm := NewTeam(0)
				defer tm.Close()
				run(b, func() { tm.Run(body, 4*n, 0) })
			})
			b.Run("job/"+name, func(b *testing.B) {
				var j Job
				run(b, func() { j.Run(body, 4*n, 0) })
			})
		}
	}
}
