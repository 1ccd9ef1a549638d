package rng

import "testing"

func TestIntn(t *testing.T) {
	a, b := New(1, 2, 3), New(1, 2, 3)
	counts := make([]int, 7)
	for range 70000 {
		x := a.Intn(7)
		if x != b.Intn(7) {
			t.Fatal("same keys gave different streams")
		}
		counts[x]++
	}
	for v, c := range counts {
		if c < 9500 || c > 10500 {
			t.Errorf("value %d drawn %d times of 70000, want about 10000", v, c)
		}
	}
	if c, d := New(1, 2, 3), New(1, 3, 2); c.Uint64() == d.Uint64() {
		t.Error("key order does not matter")
	}
	if a.Intn(0) != 0 || a.Intn(-5) != 0 {
		t.Error("Intn of a non-positive bound is not 0")
	}
}
