package synth

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mambago/mamba/data"
)

func batches(t *testing.T, task Task, o Options, n int) []data.Batch {
	t.Helper()
	s, err := New(task, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([]data.Batch, n)
	for i := range out {
		var b data.Batch
		if err := s.Next(&b); err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func TestSelectiveCopying(t *testing.T) {
	task := SelectiveCopying{Vocab: 10, Len: 200, Data: 16}
	for _, b := range batches(t, task, Options{Batch: 8, Seed: 3}, 5) {
		for r := range b.Batch {
			in, tg := b.Inputs[r*200:(r+1)*200], b.Targets[r*200:(r+1)*200]
			var data []int32
			for i, v := range in[:184] {
				if v < 0 || v >= 10 || v == Marker || tg[i] != -1 {
					t.Fatalf("region position %d: input %d target %d", i, v, tg[i])
				}
				if v != Noise {
					data = append(data, v)
				}
			}
			if len(data) != 16 {
				t.Fatalf("row %d has %d data tokens, want 16", r, len(data))
			}
			for i := 184; i < 200; i++ {
				if in[i] != Marker {
					t.Fatalf("answer position %d holds %d, want the marker", i, in[i])
				}
			}
			if !slices.Equal(tg[184:], data) {
				t.Fatalf("targets %v, want the data tokens in order %v", tg[184:], data)
			}
		}
	}
}

func TestInductionHeads(t *testing.T) {
	task := InductionHeads{Vocab: 16, Len: 64}
	for _, b := range batches(t, task, Options{Batch: 16, Seed: 9}, 5) {
		for r := range b.Batch {
			in, tg := b.Inputs[r*64:(r+1)*64], b.Targets[r*64:(r+1)*64]
			p := slices.Index(in, task.Trigger())
			if p < 0 || p > 61 || in[63] != task.Trigger() || slices.Index(in[p+1:], task.Trigger()) != 62-p {
				t.Fatalf("row %d: trigger at %d and the end only, got %v", r, p, in)
			}
			for i, v := range tg[:63] {
				if v != -1 {
					t.Fatalf("target %d at non-answer position %d", v, i)
				}
			}
			if tg[63] != in[p+1] {
				t.Fatalf("answer %d, want the token after the first trigger %d", tg[63], in[p+1])
			}
		}
	}
}

func TestDeterministicAndResumable(t *testing.T) {
	for _, task := range []Task{PaperSelectiveCopying, PaperInductionHeads} {
		o := Options{Batch: 4, Seed: 1}
		plain := batches(t, task, o, 12)
		o.Prefetch = 2
		again := batches(t, task, o, 12)
		s, _ := New(task, o)
		var b data.Batch
		for range 7 {
			s.Next(&b)
		}
		c := s.Cursor()
		s.Close()
		resumed, _ := New(task, o)
		if err := resumed.Restore(c); err != nil {
			t.Fatal(err)
		}
		for i := range plain {
			if !slices.Equal(plain[i].Inputs, again[i].Inputs) || !slices.Equal(plain[i].Targets, again[i].Targets) {
				t.Fatalf("%s: batch %d differs between runs", task.Name(), i)
			}
			if i >= 7 {
				resumed.Next(&b)
				if !slices.Equal(plain[i].Inputs, b.Inputs) || !slices.Equal(plain[i].Targets, b.Targets) {
					t.Fatalf("%s: resumed batch %d differs", task.Name(), i)
				}
			}
		}
		resumed.Close()
		if slices.Equal(plain[0].Inputs, plain[1].Inputs) {
			t.Errorf("%s: consecutive batches are equal", task.Name())
		}
	}
}

func TestRefuses(t *testing.T) {
	for _, task := range []Task{
		SelectiveCopying{Vocab: 2, Len: 100, Data: 4},
		SelectiveCopying{Vocab: 16, Len: 7, Data: 4},
		SelectiveCopying{Vocab: 16, Len: 100, Data: 0},
		InductionHeads{Vocab: 2, Len: 10},
		InductionHeads{Vocab: 16, Len: 2},
	} {
		if _, err := New(task, Options{Batch: 1}); err == nil {
			t.Errorf("New accepted %+v", task)
		}
	}
	if _, err := New(PaperInductionHeads, Options{Batch: 0}); err == nil {
		t.Error("New accepted batch 0")
	}
}

func TestAccuracyArgmax(t *testing.T) {
	logits := []float32{0, 3, 1, 5, 5, 0, -1, -2, -3}
	pred, err := Argmax(nil, logits, 3)
	if err != nil || !slices.Equal(pred, []int32{1, 0, 0}) {
		t.Fatalf("Argmax = %v, %v; want [1 0 0]", pred, err)
	}
	c, n, err := Accuracy(pred, []int32{1, -1, 2})
	if err != nil || c != 1 || n != 2 {
		t.Errorf("Accuracy = %d/%d, %v; want 1/2", c, n, err)
	}
	if _, _, err := Accuracy(pred, []int32{1}); err == nil {
		t.Error("Accuracy accepted mismatched lengths")
	}
	if _, err := Argmax(nil, logits, 4); err == nil {
		t.Error("Argmax accepted a partial row")
	}
}

func ExampleNew() {
	src, _ := New(SelectiveCopying{Vocab: 6, Len: 12, Data: 3}, Options{Batch: 1, Seed: 7})
	defer src.Close()
	var b data.Batch
	src.Next(&b)
	fmt.Println(b.Inputs)
	fmt.Println(b.Targets)
	correct, total, _ := Accuracy(b.Targets, b.Targets) // a perfect model
	fmt.Println(correct, total)
	// Output:
	// [0 0 0 3 0 0 4 0 3 1 1 1]
	// [-1 -1 -1 -1 -1 -1 -1 -1 -1 3 4 3]
	// 3 3
}

func BenchmarkSelectiveCopying(b *testing.B) {
	src, _ := New(PaperSelectiveCopying, Options{Batch: 64, Seed: 1})
	defer src.Close()
	var bt data.Batch
	for b.Loop() {
		src.Next(&bt)
	}
	b.ReportMetric(float64(b.N*64*4096)/b.Elapsed().Seconds(), "tokens/s")
}
