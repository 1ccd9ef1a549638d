package data

import (
	"testing"

	"github.com/mambago/mamba/data/shard"
)

// Lanes of an interleaved stream together deliver the plain stream's batches, lane
// q taking batches q, q+N, q+2N, ...; their cursors agree with the plain stream's
// after every round, and a cursor saved by N lanes resumes into M lanes (the case of
// a data-parallel run resumed on another number of ranks).
func TestInterleaveSplitsTheStream(t *testing.T) {
	path := makeShard(t, shard.DNA, 8, 5000, 3000)
	for _, prefetch := range []int{0, 2} {
		o := LoaderOptions{Batch: 2, Len: 32, Seed: 3, Prefetch: prefetch}
		plain := take(t, open(t, path, o), 24)

		const n, rounds = 3, 4 // 12 batches
		lanes := make([]*Loader, n)
		for q := range lanes {
			lanes[q] = open(t, path, o)
			take(t, lanes[q], 1) // start mid-stream: a prefetcher is running
			if err := lanes[q].Restore(Cursor{Source: lanes[q].Cursor().Source}); err != nil {
				t.Fatal(err)
			}
			if err := lanes[q].Interleave(q, n); err != nil {
				t.Fatal(err)
			}
		}
		for r := range rounds {
			for q, l := range lanes {
				sameBatches(t, "lane batch", plain[r*n+q:r*n+q+1], take(t, l, 1))
			}
			for q, l := range lanes {
				if c := l.Cursor(); c.Step != uint64((r+1)*n) {
					t.Fatalf("prefetch %d: lane %d cursor %d after round %d, want %d", prefetch, q, c.Step, r, (r+1)*n)
				}
			}
		}

		c := lanes[0].Cursor()
		for q := range 2 {
			l := open(t, path, o)
			if err := l.Interleave(q, 2); err != nil {
				t.Fatal(err)
			}
			if err := l.Restore(c); err != nil {
				t.Fatal(err)
			}
			for r := range 6 {
				sameBatches(t, "resumed on 2 lanes", plain[12+2*r+q:12+2*r+q+1], take(t, l, 1))
			}
		}
	}
	if err := open(t, path, LoaderOptions{Batch: 1, Len: 8}).Interleave(2, 2); err == nil {
		t.Error("lane 2 of 2 lanes was accepted")
	}
}
