package cuda

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/scan"
)

// timeEvents runs f reps times between events and returns the median milliseconds.
func timeEvents(b *testing.B, d *Device, reps int, f func() error) float64 {
	b.Helper()
	start, end := newEvent(b, d), newEvent(b, d)
	ms := make([]float64, reps)
	for i := range ms {
		if err := firstErr(start.Record(), f(), end.Record()); err != nil {
			b.Fatal(err)
		}
		var err error
		if ms[i], err = end.Since(start); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(ms)
	return ms[reps/2]
}

func newEvent(b *testing.B, d *Device) *Event {
	e, err := d.NewEvent()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// copyBandwidth times a device-to-device copy of 2 GiB and returns bytes read plus written per second.
func copyBandwidth(b *testing.B, d *Device) float64 {
	const n = 1 << 31
	src, err := d.Alloc(n)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Free(src)
	dst, err := d.Alloc(n)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Free(dst)
	if err := firstErr(d.Fill32(src, 0x3f800000), d.Copy(dst, src)); err != nil {
		b.Fatal(err)
	}
	ms := timeEvents(b, d, 9, func() error { return d.Copy(dst, src) })
	return 2 * n / (ms * 1e-3)
}

// BenchmarkCUDAScan times the scan forward and backward at the Mamba-130M layer shape of the issue
// (batch 8, L 2048, d_inner 1536, N 16; softplus, D, z, Δ bias, all gradients) with CUDA events, and
// compares it with the time to read every input and write every output once at the copy bandwidth
// measured in the same run:
//
//	forward reads u, δ, z (3·B·L·D), B, C (2·B·L·N), A, D, bias; writes out (B·L·D) and the saved states
//	backward reads u, δ, z, dout (4·B·L·D), B, C, A, D, bias, the saved states; writes du, dδ, dz
//	(3·B·L·D), dB, dC (2·B·L·N), dA, dD, dbias
//
// in float32. The partial sums the kernels write and reread are counted in the time, not the floor.
// The same number of elements as 16 × 1024 runs twice as many blocks: the difference shows how much
// more parallelism would help.
func BenchmarkCUDAScan(b *testing.B) {
	d := gpu(b)
	d.SyncEach = false
	defer func() { d.SyncEach = true }()
	bw := copyBandwidth(b, d)
	for _, s := range []scan.Shape{{Batch: 8, Len: 2048, Channels: 1536, State: 16}, {Batch: 16, Len: 1024, Channels: 1536, State: 16}} {
		for _, serial := range []bool{false, true} {
			name := fmt.Sprintf("%dx%dx%dx%d/prefetch", s.Batch, s.Len, s.Channels, s.State)
			if serial {
				name = strings.Replace(name, "prefetch", "serial", 1)
			}
			b.Run(name, func(b *testing.B) { benchScan(b, d, s, serial, bw) })
		}
	}
}

func benchScan(b *testing.B, d *Device, s scan.Shape, serial bool, bw float64) {
	r := rand.New(rand.NewPCG(1, 2))
	c := scanCase{s: s, softplus: true, D: true, Z: true, bias: true}
	x := randomScan(r, c)
	k, err := d.NewScan(s, ScanOptions{Softplus: true, Serial: serial})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	tok, rows, st := s.Batch*s.Len*s.Channels, s.Batch*s.Len*s.State, s.Channels*s.State
	in := ScanIn{U: f32(b, d, x.in.U), Delta: f32(b, d, x.in.Delta), A: f32(b, d, x.in.A), B: f32(b, d, x.in.B),
		C: f32(b, d, x.in.C), D: f32(b, d, x.in.D), Z: f32(b, d, x.in.Z), DeltaBias: f32(b, d, x.in.DeltaBias)}
	out, dout := poisoned(b, d, tok), f32(b, d, x.dout)
	g := ScanGrads{U: poisoned(b, d, tok), Delta: poisoned(b, d, tok), Z: poisoned(b, d, tok), A: poisoned(b, d, st),
		B: poisoned(b, d, rows), C: poisoned(b, d, rows), D: poisoned(b, d, s.Channels), DeltaBias: poisoned(b, d, s.Channels)}
	fwd := func() error { return k.Forward(in, out, Buffer{}) }
	bwd := func() error { return k.Backward(in, dout, Buffer{}, g) }
	for range 3 {
		if err := firstErr(fwd(), bwd(), d.Sync()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var fms, bms float64
	for range b.N {
		fms += timeEvents(b, d, 5, fwd)
		bms += timeEvents(b, d, 5, bwd)
	}
	b.StopTimer()
	fms, bms = fms/float64(b.N), bms/float64(b.N)
	params := 3*s.Channels + st
	fwdBytes := 4 * float64(3*tok+2*rows+params+tok+k.SavedBytes()/4)
	bwdBytes := 4 * float64(4*tok+2*rows+params+k.SavedBytes()/4+3*tok+2*rows+params)
	floor := (fwdBytes + bwdBytes) / bw * 1e3
	elems := float64(tok) * float64(s.State)
	b.ReportMetric(bw/1e9, "copy-GB/s")
	b.ReportMetric(fms, "fwd-ms")
	b.ReportMetric(bms, "bwd-ms")
	b.ReportMetric((fwdBytes+bwdBytes)/1e6, "MB-moved")
	b.ReportMetric(floor, "floor-ms")
	b.ReportMetric((fms+bms)*1e6/elems, "ps/elem")
	b.ReportMetric((fms+bms)/floor, "x-floor")
	b.Logf("%v: fwd %.3f ms (%.0f GB/s), bwd %.3f ms (%.0f GB/s); floor %.3f ms for %.0f MB at %.0f GB/s; fwd+bwd = %.2f× the floor (target ≤ 2)",
		s, fms, fwdBytes/fms/1e6, bms, bwdBytes/bms/1e6, floor, (fwdBytes+bwdBytes)/1e6, bw/1e9, (fms+bms)/floor)
}

// BenchmarkCUDAGemm measures cuBLAS's rate on 4096³ products in float32, TF32 and bf16 (the peaks
// MFU will be taken against).
func BenchmarkCUDAGemm(b *testing.B) {
	d := gpu(b)
	d.SyncEach = false
	defer func() { d.SyncEach = true }()
	const n = 4096
	r := rand.New(rand.NewPCG(3, 4))
	a32, b32 := f32(b, d, normals(r, n*n, 1)), f32(b, d, normals(r, n*n, 1))
	c := poisoned(b, d, n*n)
	a16, err := d.Alloc(2 * n * n)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Free(a16)
	b16, err := d.Alloc(2 * n * n)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Free(b16)
	if err := firstErr(d.ToBF16(a16, a32, n*n), d.ToBF16(b16, b32, n*n)); err != nil {
		b.Fatal(err)
	}
	defer d.SetMath(MathFP32)
	for _, m := range []struct {
		name string
		f    func() error
	}{
		{"fp32", func() error {
			return firstErr(d.SetMath(MathFP32), d.Gemm(false, true, n, n, n, 1, a32, n, b32, n, 0, c, n))
		}},
		{"tf32", func() error {
			return firstErr(d.SetMath(MathTF32), d.Gemm(false, true, n, n, n, 1, a32, n, b32, n, 0, c, n))
		}},
		{"bf16", func() error { return d.GemmBF16(false, true, n, n, n, 1, a16, n, b16, n, 0, c, n, false) }},
	} {
		b.Run(m.name, func(b *testing.B) {
			for range 2 {
				if err := m.f(); err != nil {
					b.Fatal(err)
				}
			}
			var ms float64
			for range b.N {
				ms += timeEvents(b, d, 5, m.f)
			}
			ms /= float64(b.N)
			b.ReportMetric(2*n*n*n/(ms*1e-3)/1e12, "TFLOP/s")
			b.Logf("%s %d³: %.3f ms, %.1f TFLOP/s", m.name, n, ms, 2*n*n*n/(ms*1e-3)/1e12)
		})
	}
}
