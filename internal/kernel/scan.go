package kernel

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/scan"
)

// Scan is the selective scan of Mamba (package scan) with A given as A_log:
// for each sequence b, channel d, state n and time t,
//
//	A = −exp(A_log)
//	Δ_t = softplus(δ_t + bias_d) (or δ_t + bias_d without Softplus)
//	h_t = exp(Δ_t·A_{d,n})·h_{t−1} + Δ_t·B_{t,n}·u_t,  h_{−1} = 0
//	y_t = Σ_n C_{t,n}·h_{t,n} + D_d·u_t,  out_t = y_t·silu(z_t)
//
// Inputs, token-major with rows = Batch·Len: u, delta (rows, Channels);
// A_log (Channels, State); B, C (rows, State); then D (Channels), z (rows,
// Channels) and deltaBias (Channels) when their flags are set. The output is
// (rows, Channels). The backward is package scan's reverse adjoint scan, and
// dA_log = dA ⊙ A. With Resets (packed documents), h_{t−1} is 0 where a
// document starts at t (scan.Inputs.Resets).
type Scan struct {
	Batch, Len, Channels, State int
	Softplus                    bool
	Chunk                       int // timesteps between saved states; 0 = scan.DefaultChunk
	D, Z, DeltaBias             bool
	Resets                      *Resets // document starts, (Batch·Len); nil: one document per sequence
}

func (s Scan) String() string {
	return fmt.Sprintf("Scan{batch=%d,len=%d,channels=%d,state=%d,softplus=%t,chunk=%d,D=%t,z=%t,deltaBias=%t,resets=%t}",
		s.Batch, s.Len, s.Channels, s.State, s.Softplus, s.Chunk, s.D, s.Z, s.DeltaBias, s.Resets != nil)
}

func (s Scan) Inputs() [][]int {
	rows := s.Batch * s.Len
	in := [][]int{{rows, s.Channels}, {rows, s.Channels}, {s.Channels, s.State}, {rows, s.State}, {rows, s.State}}
	if s.D {
		in = append(in, []int{s.Channels})
	}
	if s.Z {
		in = append(in, []int{rows, s.Channels})
	}
	if s.DeltaBias {
		in = append(in, []int{s.Channels})
	}
	return in
}

func (s Scan) Output() []int { return []int{s.Batch * s.Len, s.Channels} }

func (s Scan) Validate() error {
	if s.Chunk < 0 {
		return fmt.Errorf("kernel: Scan: chunk %d, want ≥ 0 (0 = %d)", s.Chunk, scan.DefaultChunk)
	}
	if err := s.Resets.Fits("kernel: Scan", s.Batch, s.Len); err != nil {
		return err
	}
	return validate(s, "batch,len,channels,state", s.Batch, s.Len, s.Channels, s.State)
}

func (s Scan) shape() scan.Shape {
	return scan.Shape{Batch: s.Batch, Len: s.Len, Channels: s.Channels, State: s.State}
}

func (s Scan) options() scan.Options { return scan.Options{Softplus: s.Softplus, Chunk: s.Chunk} }

// NegExp writes a = −exp(aLog) in float32: the A of the training graph and
// of the decoder.
func NegExp(a, aLog []float32) {
	a = a[:len(aLog)]
	for i, v := range aLog {
		a[i] = -math32.Exp(v)
	}
}

func (s Scan) CPUKernel() Kernel[[]float32] {
	k, err := scan.New(s.shape(), s.options())
	if err != nil {
		panic(fmt.Sprintf("kernel: %s passed Validate but scan.New failed: %v", s, err))
	}
	n := s.Channels * s.State
	return &scanKernel[float32]{s: s, k: k, a: make([]float32, n), da: make([]float32, n), negExp: NegExp, held: Hold(s.Resets)}
}

func (s Scan) ReferenceKernel() Kernel[[]float64] {
	k, err := scan.NewReference(s.shape(), s.options())
	if err != nil {
		panic(fmt.Sprintf("kernel: %s passed Validate but scan.NewReference failed: %v", s, err))
	}
	n := s.Channels * s.State
	return &scanKernel[float64]{s: s, k: k, a: make([]float64, n), da: make([]float64, n), negExp: negExp64, held: Hold(s.Resets)}
}

func negExp64(a, aLog []float64) {
	for i, v := range aLog {
		a[i] = -math.Exp(v)
	}
}

// scanKernel adapts a scan.Kernel (the fast float32 one or the float64
// reference) to a Kernel: the forward and backward are the scan's own.
type scanKernel[T float32 | float64] struct {
	s      Scan
	k      scan.Kernel[T]
	a, da  []T // A = −exp(A_log) of the last forward; dA
	negExp func(a, aLog []T)
	held   HeldResets // the document starts of the last forward
}

// split maps inputs (or gradients) onto the scan's fields, with A_log in A
// and the held document starts.
func (k *scanKernel[T]) split(x [][]T) scan.Inputs[T] {
	in := scan.Inputs[T]{U: x[0], Delta: x[1], A: x[2], B: x[3], C: x[4], Resets: k.held.Flags()}
	i := 5
	next := func(has bool) []T {
		if !has {
			return nil
		}
		i++
		return x[i-1]
	}
	in.D, in.Z, in.DeltaBias = next(k.s.D), next(k.s.Z), next(k.s.DeltaBias)
	return in
}

func (k *scanKernel[T]) Forward(in [][]T, out []T) {
	k.held.Take()
	x := k.split(in)
	k.negExp(k.a, x.A)
	x.A = k.a
	if err := k.k.Forward(x, out, nil); err != nil {
		panic(fmt.Sprintf("kernel: %s: %v", k.s, err)) // shapes were checked: cannot happen
	}
}

// Backward: A = −exp(A_log) gives ∂A/∂A_log = A, so dA_log = dA ⊙ A.
func (k *scanKernel[T]) Backward(in [][]T, dout []T, din [][]T) {
	x, d := k.split(in), k.split(din)
	k.negExp(k.a, x.A)
	x.A = k.a
	dALog := d.A
	if dALog != nil {
		d.A = k.da
	}
	g := scan.Grads[T]{U: d.U, Delta: d.Delta, A: d.A, B: d.B, C: d.C, D: d.D, Z: d.Z, DeltaBias: d.DeltaBias}
	if err := k.k.Backward(x, dout, nil, g); err != nil {
		panic(fmt.Sprintf("kernel: %s: %v", k.s, err))
	}
	for i := range dALog {
		dALog[i] = k.da[i] * k.a[i]
	}
}
