package math32

import "testing"

// BenchmarkRows reports each row function's time per element on every path (a row of 4096,
// in L1).
func BenchmarkRows(b *testing.B) {
	x := grid(4096, -8, 8)
	y, d := make([]float32, len(x)), make([]float32, len(x))
	defer func() { _ = SetPath(available[len(available)-1]) }()
	for _, p := range Paths() {
		for _, f := range append(rowFuncs, rowFunc{name: "ExpScaledRows", run: func(y, _, x []float32) {
			ExpScaledRows(y, 16, x, 1, x[:16], 0)
		}}) {
			b.Run(p.String()+"/"+f.name, func(b *testing.B) {
				if err := SetPath(p); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					f.run(y, d, x)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/elem")
			})
		}
	}
}
