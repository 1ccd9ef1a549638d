package layers

import (
	"math"
	"runtime"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

// tapeBytesPerToken sums the values of the activation nodes block l added
// to the graph (per token: only nodes with one row per token) after a run.
func tapeBytesPerToken(gr *graph, l, rows int) int {
	total := 0
	for _, n := range gr.blocks[l] {
		v := gr.vm.Float32s(n)
		if v == nil || len(n.Shape()) == 0 || n.Shape()[0] != rows {
			continue
		}
		total += len(v) * 4
	}
	return total / rows
}

// steppedTrainer compiles a new model of cfg and runs one Step.
func steppedTrainer(t *testing.T, cfg Config, batch, L int) *Trainer {
	t.Helper()
	m, err := NewLM(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := m.Compile(batch, L)
	if err != nil {
		t.Fatal(err)
	}
	ids := randomIDs(batch*L, cfg.VocabSize, 1)
	if _, err := tr.Step(ids, ids, nil); err != nil {
		t.Fatal(err)
	}
	return tr
}

// heapAfterStep is the live heap after one Step and a GC, with the Trainer
// still reachable: everything the graph keeps between steps.
func heapAfterStep(t *testing.T, cfg Config, batch, L int) uint64 {
	tr := steppedTrainer(t, cfg, batch, L)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(tr)
	return ms.HeapAlloc
}

// TestActivationMemory: what a step keeps per token and layer grows with
// d_model·expand and d_state, never with their product.
func TestActivationMemory(t *testing.T) {
	perToken := map[int]int{}
	for _, N := range []int{16, 64} {
		c := DefaultConfig()
		c.VocabSize, c.DModel, c.NLayer, c.DState = 64, 64, 2, N
		batch, L := 2, 47 // batch·L differs from every parameter's first dimension
		tr := steppedTrainer(t, c, batch, L)
		perToken[N] = tapeBytesPerToken(tr.train, 1, batch*L)
		t.Logf("d_model %d, expand 2, N %d: %d bytes per token per layer held on the tape (%.1f floats per d_inner channel)",
			c.DModel, N, perToken[N], float64(perToken[N])/4/float64(c.DInner()))
	}
	// B and C are (tokens, N) each, held twice (in the [δ | B | C] product
	// and as its split copies): going from N=16 to 64 may add 4·48 floats
	// per token, not 48·d_inner.
	if d := perToken[64] - perToken[16]; d > 4*48*4 {
		t.Errorf("per-token memory grows by %d bytes from N=16 to N=64: O(d_inner·N)?", d)
	}
	if testing.Short() {
		return
	}
	// The whole live heap between steps, per token and layer: difference of
	// 3 and 1 layers at the same shape.
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.DState = 64, 64, 16
	batch, L := 2, 256
	c.NLayer = 1
	h1 := heapAfterStep(t, c, batch, L)
	c.NLayer = 3
	h3 := heapAfterStep(t, c, batch, L)
	perLayer := float64(int64(h3)-int64(h1)) / 2 / float64(batch*L)
	t.Logf("live heap after a step: %.0f bytes per token per layer (d_model 64, N 16; includes activation gradients kept by the graph)", perLayer)
	if !testutil.Within(perLayer, float64(64*2*4*64)) {
		t.Errorf("live heap %.0f bytes per token per layer exceeds 64 floats per d_inner channel", perLayer)
	}
}

// TestTrainingBytes: the estimate covers the live heap after a step (what a
// training step keeps) and is not more than twice it.
func TestTrainingBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap of two trainers: skipped with -short")
	}
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.DState, c.NLayer = 64, 64, 16, 3
	tpp := transformer(func(c *Config) { c.VocabSize, c.DModel, c.NLayer, c.NHead, c.NKVHead = 64, 64, 3, 4, 2 })
	for _, c := range []Config{c, tpp} {
		batch, L := 2, 256
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		live := float64(heapAfterStep(t, c, batch, L)) - float64(before.HeapAlloc)
		est := c.TrainingBytes(batch, L)
		t.Logf("%s: estimate %.0f bytes, live heap after a step %.0f bytes (without an optimizer)", c.Arch, est, live)
		if !(est >= live && est <= 2*live) {
			t.Errorf("%s: TrainingBytes %.0f, live heap %.0f: want the estimate in [live, 2·live]", c.Arch, est, live)
		}
	}
}

// TestGenerationBytes: for both architectures the estimate covers the live
// heap of a generator after a prefill and its steps, with the model, and
// grows with the tokens asked for (a trillion of them is terabytes) without
// overflowing.
func TestGenerationBytes(t *testing.T) {
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.DState, c.NLayer = 64, 64, 16, 3
	for _, c := range []Config{c, llamaConfigs[1]} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m, err := NewLM(c, 1)
		if err != nil {
			t.Fatal(err)
		}
		g, err := m.NewGenerator(2, 300+500)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Prefill(randomIDs(2*300, c.VocabSize, 1), 300); err != nil {
			t.Fatal(err)
		}
		for range 500 {
			if _, err := g.Step([]int32{1, 2}); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(m)
		runtime.KeepAlive(g)
		g.Close()
		live, est := float64(after.HeapAlloc)-float64(before.HeapAlloc), c.GenerationBytes(2, 300, 500)
		t.Logf("%s: estimate %.0f bytes, live heap after generating %.0f bytes", c.Arch, est, live)
		if !(est >= live) {
			t.Errorf("%s: GenerationBytes %.0f is below the live heap %.0f", c.Arch, est, live)
		}
		if big := c.GenerationBytes(1, 1, 1e12); !(big > 4e12) || math.IsInf(big, 0) {
			t.Errorf("%s: a trillion tokens: %g bytes", c.Arch, big)
		}
		if huge := c.GenerationBytes(1, 1, math.MaxInt); !(huge > 1e19) {
			t.Errorf("%s: MaxInt tokens: %g bytes", c.Arch, huge)
		}
	}
}
