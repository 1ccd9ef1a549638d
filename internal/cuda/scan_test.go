package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/scan"
)

// scanCase is one configuration of the scan: a shape and which optional parts are present.
type scanCase struct {
	s                                     scan.Shape
	softplus, D, Z, bias, h0, dlast, alog bool
	resets                                int  // document starts drawn per sequence (0: no mask)
	partial                               bool // ask for only some gradients
}

func (c scanCase) String() string {
	return fmt.Sprintf("%dx%dx%dx%d/sp=%t,D=%t,z=%t,bias=%t,h0=%t,dlast=%t,alog=%t,resets=%d,partial=%t",
		c.s.Batch, c.s.Len, c.s.Channels, c.s.State, c.softplus, c.D, c.Z, c.bias, c.h0, c.dlast, c.alog, c.resets, c.partial)
}

// scanData is a random problem: inputs as the reference takes them (A, not A_log), the upstream
// gradients, the reset mask and, with alog, the A_log the device gets.
type scanData struct {
	in          scan.Inputs[float64]
	alog        []float64
	dout, dlast []float64
	reset       []byte
}

// randomScan draws inputs like the reference fixtures: A = −exp(N(0, 0.25)), the rest normal; without
// softplus δ = 0.1·|N(0, 1)| and a positive bias, so that Δ stays positive.
func randomScan(r *rand.Rand, c scanCase) scanData {
	s := c.s
	tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Batch*s.Channels*s.State
	x := scanData{in: scan.Inputs[float64]{U: normals(r, tok, 1), Delta: normals(r, tok, 1), B: normals(r, rows, 1), C: normals(r, rows, 1)}}
	x.alog = normals(r, s.Channels*s.State, 0.5)
	x.in.A = make([]float64, len(x.alog))
	for i, a := range x.alog {
		x.in.A[i] = -math.Exp(float64(float32(a))) // what the device computes from the float32 A_log
	}
	if !c.softplus {
		for i, v := range x.in.Delta {
			x.in.Delta[i] = 0.1 * math.Abs(v)
		}
	}
	if c.D {
		x.in.D = normals(r, s.Channels, 1)
	}
	if c.Z {
		x.in.Z = normals(r, tok, 1)
	}
	if c.bias {
		x.in.DeltaBias = normals(r, s.Channels, 0.5)
		if !c.softplus {
			for i, v := range x.in.DeltaBias {
				x.in.DeltaBias[i] = 0.1 * math.Abs(v)
			}
		}
	}
	if c.h0 {
		x.in.H0 = normals(r, st, 1)
	}
	x.dout = normals(r, tok, 1)
	if c.dlast {
		x.dlast = normals(r, st, 1)
	}
	if c.resets > 0 {
		x.reset = make([]byte, s.Batch*s.Len)
		for b := range s.Batch {
			for range c.resets {
				x.reset[b*s.Len+r.IntN(s.Len)] = 1
			}
		}
	}
	return x
}

// refScan runs scan.Reference on x; with a reset mask, each document of each sequence separately
// (the state entering a document is zero; H0 enters the first one unless it starts at 0), which is
// what the mask means.
func refScan(t *testing.T, c scanCase, x scanData) map[string][]float64 {
	s := c.s
	tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Batch*s.Channels*s.State
	want := map[string][]float64{"out": make([]float64, tok), "last": make([]float64, st), "dU": make([]float64, tok),
		"dDelta": make([]float64, tok), "dA": make([]float64, s.Channels*s.State), "dB": make([]float64, rows),
		"dC": make([]float64, rows), "dD": make([]float64, s.Channels), "dBias": make([]float64, s.Channels), "dH0": make([]float64, st)}
	if c.Z {
		want["dZ"] = make([]float64, tok)
	}
	D, N := s.Channels, s.State
	for b := range s.Batch {
		starts := []int{0}
		for tt := 1; tt < s.Len; tt++ {
			if x.reset != nil && x.reset[b*s.Len+tt] != 0 {
				starts = append(starts, tt)
			}
		}
		starts = append(starts, s.Len)
		for k := 0; k+1 < len(starts); k++ {
			t0, t1 := starts[k], starts[k+1]
			seg := scan.Shape{Batch: 1, Len: t1 - t0, Channels: D, State: N}
			tk := func(v []float64, w int) []float64 {
				if v == nil {
					return nil
				}
				return v[(b*s.Len+t0)*w : (b*s.Len+t1)*w]
			}
			in := scan.Inputs[float64]{U: tk(x.in.U, D), Delta: tk(x.in.Delta, D), A: x.in.A, B: tk(x.in.B, N), C: tk(x.in.C, N),
				D: x.in.D, Z: tk(x.in.Z, D), DeltaBias: x.in.DeltaBias}
			first := k == 0 && (x.reset == nil || x.reset[b*s.Len] == 0)
			if first && x.in.H0 != nil {
				in.H0 = x.in.H0[b*D*N : (b+1)*D*N]
			}
			ref, err := scan.NewReference(seg, scan.Options{Softplus: c.softplus})
			if err != nil {
				t.Fatal(err)
			}
			last := make([]float64, D*N)
			if err := ref.Forward(in, tk(want["out"], D), last); err != nil {
				t.Fatal(err)
			}
			var dlast []float64
			if k+2 == len(starts) {
				copy(want["last"][b*D*N:], last)
				if x.dlast != nil {
					dlast = x.dlast[b*D*N : (b+1)*D*N]
				}
			}
			g := scan.Grads[float64]{U: tk(want["dU"], D), Delta: tk(want["dDelta"], D), A: make([]float64, D*N),
				B: tk(want["dB"], N), C: tk(want["dC"], N), D: make([]float64, D), Z: tk(want["dZ"], D),
				DeltaBias: make([]float64, D), H0: make([]float64, D*N)}
			if err := ref.Backward(in, tk(x.dout, D), dlast, g); err != nil {
				t.Fatal(err)
			}
			for i, v := range g.A {
				want["dA"][i] += v
			}
			for i := range g.D {
				want["dD"][i] += g.D[i]
				want["dBias"][i] += g.DeltaBias[i]
			}
			if first {
				copy(want["dH0"][b*D*N:], g.H0)
			}
		}
	}
	if c.alog {
		for i, a := range x.in.A {
			want["dA"][i] *= a // ∂L/∂A_log = ∂L/∂A·A
		}
	}
	return want
}

// runScan runs the device scan forward and backward on x with every output poisoned first.
func runScan(t *testing.T, d *Device, k *Scan, c scanCase, x scanData) map[string][]float64 {
	s := c.s
	tok, st := s.Batch*s.Len*s.Channels, s.Batch*s.Channels*s.State
	in := ScanIn{U: f32(t, d, x.in.U), Delta: f32(t, d, x.in.Delta), A: f32(t, d, x.in.A), B: f32(t, d, x.in.B),
		C: f32(t, d, x.in.C), D: f32(t, d, x.in.D), Z: f32(t, d, x.in.Z), DeltaBias: f32(t, d, x.in.DeltaBias), H0: f32(t, d, x.in.H0)}
	if c.alog {
		in.A = f32(t, d, x.alog)
	}
	if x.reset != nil {
		in.Reset = devBuf(t, d, x.reset)
	}
	out, last := poisoned(t, d, tok), poisoned(t, d, st)
	if err := k.Forward(in, out, last); err != nil {
		t.Fatal(err)
	}
	g := ScanGrads{U: poisoned(t, d, tok), Delta: poisoned(t, d, tok), A: poisoned(t, d, s.Channels*s.State),
		B: poisoned(t, d, s.Batch*s.Len*s.State), C: poisoned(t, d, s.Batch*s.Len*s.State), D: poisoned(t, d, s.Channels),
		DeltaBias: poisoned(t, d, s.Channels), H0: poisoned(t, d, st)}
	if c.Z {
		g.Z = poisoned(t, d, tok)
	}
	if c.partial { // only U and A: the other gradients' kernels and reductions must be skipped safely
		g = ScanGrads{U: g.U, A: g.A}
	}
	if err := k.Backward(in, f32(t, d, x.dout), f32(t, d, x.dlast), g); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{"out": host(t, d, out), "last": host(t, d, last), "dU": host(t, d, g.U),
		"dDelta": host(t, d, g.Delta), "dA": host(t, d, g.A), "dB": host(t, d, g.B), "dC": host(t, d, g.C),
		"dD": host(t, d, g.D), "dBias": host(t, d, g.DeltaBias), "dH0": host(t, d, g.H0), "dZ": host(t, d, g.Z)}
	for name, v := range got {
		if v == nil {
			delete(got, name)
		}
	}
	return got
}

// checkScanCase compares the device with the reference (relative L2 ≤ 1e-4 per tensor), runs the
// device twice to check that the results are bitwise identical, and once more with the tiles loaded
// serially (ScanOptions.Serial), which must not change a bit.
func checkScanCase(t *testing.T, d *Device, c scanCase, r *rand.Rand) {
	x := randomScan(r, c)
	want := refScan(t, c, x)
	k, err := d.NewScan(c.s, ScanOptions{Softplus: c.softplus, ALog: c.alog})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	got := runScan(t, d, k, c, x)
	if c.partial {
		want = map[string][]float64{"out": want["out"], "last": want["last"], "dU": want["dU"], "dA": want["dA"]}
	}
	closeAll(t, c.String(), got, want, 1e-4)
	sameBits(t, c.String()+" twice", got, runScan(t, d, k, c, x))
	serial, err := d.NewScan(c.s, ScanOptions{Softplus: c.softplus, ALog: c.alog, Serial: true})
	if err != nil {
		t.Fatal(err)
	}
	defer serial.Close()
	sameBits(t, c.String()+" serial loads", got, runScan(t, d, serial, c, x))
}

func TestCUDAScanMatchesReference(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 13))
	all := func(s scan.Shape) scanCase {
		return scanCase{s: s, softplus: true, D: true, Z: true, bias: true, h0: true, dlast: true}
	}
	cases := []scanCase{
		all(scan.Shape{Batch: 1, Len: 1, Channels: 1, State: 1}),
		all(scan.Shape{Batch: 2, Len: 37, Channels: 5, State: 3}),
		{s: scan.Shape{Batch: 1, Len: 300, Channels: 33, State: 16}, softplus: true, D: true, Z: true},
		{s: scan.Shape{Batch: 3, Len: 129, Channels: 64, State: 4}, h0: true},
		all(scan.Shape{Batch: 2, Len: 260, Channels: 70, State: 17}),
		all(scan.Shape{Batch: 1, Len: 700, Channels: 40, State: 64}),
		all(scan.Shape{Batch: 4, Len: 513, Channels: 96, State: 16}),
		{s: scan.Shape{Batch: 2, Len: 200, Channels: 50, State: 8}, softplus: true, Z: true, bias: true, alog: true, dlast: true},
		{s: scan.Shape{Batch: 2, Len: 150, Channels: 40, State: 16}, softplus: true, D: true, Z: true, bias: true, partial: true},
	}
	for range 4 {
		c := scanCase{s: scan.Shape{Batch: 1 + r.IntN(3), Len: 1 + r.IntN(600), Channels: 1 + r.IntN(100), State: 1 + r.IntN(64)},
			softplus: r.IntN(2) == 0, D: r.IntN(2) == 0, Z: r.IntN(2) == 0, bias: r.IntN(2) == 0, h0: r.IntN(2) == 0,
			dlast: r.IntN(2) == 0, alog: r.IntN(2) == 0}
		cases = append(cases, c)
	}
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) { checkScanCase(t, d, c, r) })
	}
}

// TestCUDAScanReset checks the packed-document mask: a batch with resets gives the outputs and
// gradients of its documents run separately.
func TestCUDAScanReset(t *testing.T) {
	d := gpu(t)
	r := rand.New(rand.NewPCG(seed(t), 14))
	for _, c := range []scanCase{
		{s: scan.Shape{Batch: 2, Len: 100, Channels: 20, State: 16}, softplus: true, D: true, Z: true, bias: true, h0: true, dlast: true, resets: 3},
		{s: scan.Shape{Batch: 3, Len: 300, Channels: 35, State: 5}, softplus: true, h0: true, resets: 8},
		{s: scan.Shape{Batch: 1, Len: 64, Channels: 8, State: 4}, h0: true, dlast: true, resets: 64},
	} {
		t.Run(c.String(), func(t *testing.T) { checkScanCase(t, d, c, r) })
	}
}
