package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
	"github.com/mambago/mamba/optim"
)

// TestCUDAAdamWMatchesOptim runs optim.AdamW and the device AdamW on the same gradients: the norms
// agree to float64 rounding, the clip scales are equal, and the parameters and moments are bitwise
// equal after every step.
func TestCUDAAdamWMatchesOptim(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 10))
	sizes := []int{37, 5, optBlock + 123, 1, 3 * optBlock}
	for _, clip := range []float64{1.0, 1e3, 0} {
		t.Run(fmt.Sprintf("clip=%g", clip), func(t *testing.T) {
			cfg := optim.Defaults()
			cfg.GradClip, cfg.WarmupSteps = clip, 2
			cpu := make([]optim.Param, len(sizes))
			dev := make([]AdamParam, len(sizes))
			for i, n := range sizes {
				v := testutil.Convert[float32](normals(r, n, 1))
				cpu[i] = optim.Param{Name: fmt.Sprint("p", i), Value: v, Grad: make([]float32, n), NoDecay: i == 1}
				dev[i] = AdamParam{Name: cpu[i].Name, Value: devBuf(t, d, v), Grad: poisoned(t, d, n), NoDecay: i == 1}
			}
			co, err := optim.New(cpu, cfg)
			if err != nil {
				t.Fatal(err)
			}
			o, err := d.NewAdamW(dev, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			const steps = 6
			for s := range steps {
				for i, p := range cpu {
					for j := range p.Grad {
						p.Grad[j] = float32(0.5 * r.NormFloat64())
					}
					if err := Upload(d, dev[i].Grad, p.Grad); err != nil {
						t.Fatal(err)
					}
				}
				lr := cfg.LRAt(s, steps)
				want := co.GradNorm()
				if err := o.GradNorm(); err != nil {
					t.Fatal(err)
				}
				norm, err := o.Norm()
				if err != nil {
					t.Fatal(err)
				}
				scale, err := o.Scale()
				if err != nil {
					t.Fatal(err)
				}
				if norm != want {
					t.Errorf("step %d: norm %v, optim %v", s, norm, want)
				}
				if ws := optim.ClipScale(want, clip); scale != ws {
					t.Errorf("step %d: clip scale %v, optim %v", s, scale, ws)
				}
				co.Step(lr, optim.ClipScale(want, clip))
				if err := firstErr(o.SetScale(optim.ClipScale(want, clip)), o.Step(lr)); err != nil {
					t.Fatal(err)
				}
				st := co.State()
				m, v := o.Moments()
				for i, p := range cpu {
					for name, pair := range map[string][2]any{"value": {p.Value, dev[i].Value}, "m": {st.M[i], m[i]}, "v": {st.V[i], v[i]}} {
						want := pair[0].([]float32)
						got := make([]float32, len(want))
						if err := Download(d, got, pair[1].(Buffer)); err != nil {
							t.Fatal(err)
						}
						for j := range want {
							if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
								t.Fatalf("step %d: %s %s[%d] = %v, optim %v", s, p.Name, name, j, got[j], want[j])
							}
						}
					}
				}
			}
		})
	}
}
