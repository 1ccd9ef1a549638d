package layers

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestLlamaDecoder: Step for every token, one Prefill, and Prefill then Prefill (by steps) then
// Step give the logits of the float64 forward over the whole sequence, for each test config, at
// batch 1 and 3, over more than one attention chunk for the long case.
func TestLlamaDecoder(t *testing.T) {
	for i := range llamaConfigs {
		m := perturbedLlama(t, i)
		for _, sh := range [][2]int{{1, 11}, {3, 70}} {
			t.Run(fmt.Sprintf("%d/batch%d_L%d", i, sh[0], sh[1]), func(t *testing.T) {
				batch, L := sh[0], sh[1]
				ids := randomIDs(batch*L, m.cfg.VocabSize, uint64(L))
				want := llamaRefFromModel(m, 8).forward(t, ids, batch, L)
				checkDecoder(t, m, ids, batch, L, want, 1e-5)
			})
		}
	}
	// Past one chunk of the decode attention (attention.DecodeChunk keys).
	m := perturbedLlama(t, 2)
	const L = 300
	ids := randomIDs(L, m.cfg.VocabSize, 9)
	checkDecoder(t, m, ids, 1, L, llamaRefFromModel(m, 8).forward(t, ids, 1, L), 1e-5)
}

func TestLlamaDecoderErrors(t *testing.T) {
	m := perturbedLlama(t, 0)
	if _, err := m.NewDecoder(0, 4); err == nil {
		t.Error("NewDecoder(0, 4) succeeded")
	}
	if _, err := m.NewDecoder(1, 0); err == nil {
		t.Error("NewDecoder(1, 0) succeeded")
	}
	d, err := m.NewDecoder(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		f    func() error
		want string
	}{
		{func() error { _, err := d.Prefill([]int32{1, 2, 3}, 2); return err }, "got 3 token ids, want 4"},
		{func() error { _, err := d.Prefill(make([]int32, 10), 5); return err }, "exceed the cache's capacity 4"},
		{func() error { _, err := d.Step([]int32{1, 99}); return err }, "outside the vocabulary"},
		{func() error { return d.Advance(5) }, "cannot advance"},
		{func() error { _, err := d.Prefill(nil, 0); return err }, "at least 1"},
	} {
		if err := tc.f(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
	if err := d.Advance(3); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step([]int32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step([]int32{1, 2}); err == nil || !strings.Contains(err.Error(), "capacity") {
		t.Errorf("a step past the capacity: error %v", err)
	}
	if _, err := m.Generate([]int32{1, 2, 3}, 2, 4, Sampling{}); err == nil {
		t.Error("Generate with 3 prompt ids in 2 rows succeeded")
	}
}

// TestLlamaAdvance: Advance fills the skipped positions with the earlier ones in order, so a step
// after Prefill(p) and Advance(n) sees what a step after the prompt repeated would see: the same
// keys and values, each at its own position.
func TestLlamaAdvance(t *testing.T) {
	m := perturbedLlama(t, 1)
	const batch, p, n = 2, 3, 7
	d, err := m.NewDecoder(batch, p+n+1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Prefill(randomIDs(batch*p, m.cfg.VocabSize, 1), p); err != nil {
		t.Fatal(err)
	}
	if err := d.Advance(n); err != nil || d.Pos() != p+n {
		t.Fatalf("Advance: %v, position %d", err, d.Pos())
	}
	kvd := m.cfg.KVHeads() * m.cfg.HeadSize()
	for l := range d.kc {
		for _, c := range [][]float32{d.kc[l], d.vc[l]} {
			for b := range batch {
				row := c[b*d.capacity*kvd:]
				for q := p; q < p+n; q++ {
					if !slices.Equal(row[q*kvd:(q+1)*kvd], row[(q%p)*kvd:(q%p+1)*kvd]) {
						t.Fatalf("layer %d, row %d: position %d is not position %d", l, b, q, q%p)
					}
				}
			}
		}
	}
	if _, err := d.Step([]int32{1, 2}); err != nil {
		t.Fatal(err)
	}
}
