package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mambago/mamba/internal/math32"
	"github.com/mambago/mamba/internal/testutil"
)

// TestMulAdd checks the product loops of every path against a float64 product, for row-major and
// transposed A, with and without accumulation, on block-aligned and ragged sizes; C's padding
// columns and rows (NaN sentinels) must survive.
func TestMulAdd(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, sz := range [][3]int{{1, 8, 1}, {4, 16, 64}, {5, 24, 7}, {64, 64, 64}, {3, 7, 5}, {9, 33, 17}, {1, 64, 256}} {
			m, n, k := sz[0], sz[1], sz[2]
			for _, trans := range []bool{false, true} {
				for _, acc := range []bool{false, true} {
					t.Run(fmt.Sprintf("%dx%dx%d_T%v_acc%v", m, n, k, trans, acc), func(t *testing.T) {
						lda, ldb, ldc := k+3, n+5, n+2
						ars, aks := lda, 1
						a := testutil.Convert[float32](testutil.Normals(r, m*lda, 1))
						if trans { // a holds Aᵀ, k rows of lda ≥ m
							lda = m + 3
							ars, aks = 1, lda
							a = testutil.Convert[float32](testutil.Normals(r, k*lda, 1))
						}
						b := testutil.Convert[float32](testutil.Normals(r, k*ldb, 1))
						c := make([]float32, (m+1)*ldc)
						for i := range c {
							c[i] = float32(math.NaN())
						}
						c0 := testutil.Convert[float32](testutil.Normals(r, m*n, 1))
						want := make([]float64, m*n)
						for i := range m {
							for j := range n {
								if acc {
									c[i*ldc+j] = c0[i*n+j]
									want[i*n+j] = float64(c0[i*n+j])
								}
								for x := range k {
									want[i*n+j] += float64(a[i*ars+x*aks]) * float64(b[x*ldb+j])
								}
							}
						}
						mulAdd(c, ldc, a, ars, aks, b, ldb, m, n, k, acc)
						got := make([]float32, m*n)
						for i := range m {
							copy(got[i*n:(i+1)*n], c[i*ldc:])
							for j := n; j < ldc; j++ {
								if v := c[i*ldc+j]; v == v {
									t.Fatalf("padding c[%d][%d] overwritten with %v", i, j, v)
								}
							}
						}
						for j := range ldc {
							if v := c[m*ldc+j]; v == v {
								t.Fatalf("row %d (past the block) overwritten", m)
							}
						}
						testutil.Close(t, "product", got, want, 1e-6)
					})
				}
			}
		}
	})
}

// TestDots checks the row dot products of every path against float64 ones.
func TestDots(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, d := range []int{8, 16, 64, 12, 3} {
			const n, ldk = 37, 70
			q := testutil.Convert[float32](testutil.Normals(r, d, 1))
			k := testutil.Convert[float32](testutil.Normals(r, n*ldk, 1))
			s := make([]float32, n+1)
			s[n] = float32(math.NaN())
			dots(s, q, k, ldk, n)
			want := make([]float64, n)
			for j := range n {
				for i := range d {
					want[j] += float64(q[i]) * float64(k[j*ldk+i])
				}
			}
			testutil.Close(t, fmt.Sprintf("dots d=%d", d), s[:n], want, 1e-6)
			if s[n] == s[n] {
				t.Errorf("d=%d: s[n] overwritten", d)
			}
		}
	})
}

// TestExpAffine checks exp(a·x + b) (math32's rows) on every path against math.Exp over the range
// the kernels use (arguments from about −100 to 0) and on ragged lengths, in place and not, and
// that expBias with a constant bias gives the same bits.
func TestExpAffine(t *testing.T) {
	withPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range []int{1, 7, 8, 13, 64, 100} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.Float64()*12 - 10)
			}
			const a, b = 0.125, -1.5
			for _, ab := range [][2]float32{{a, b}, {8, -20}, {1, 0}} {
				got := make([]float32, n)
				expAffine(got, x, ab[0], ab[1])
				worst := 0.0
				for i, v := range x {
					w := math.Exp(float64(ab[0]*v + ab[1]))
					if ab[0]*v+ab[1] < math32.ExpLo { // subnormal results are 0 in every path
						if got[i] != 0 {
							t.Errorf("exp(%v) = %v, want 0", ab[0]*v+ab[1], got[i])
						}
						continue
					}
					worst = max(worst, math.Abs(float64(got[i])-w)/w)
				}
				testutil.CheckErr(t, fmt.Sprintf("n %d a %v b %v: relative error", n, ab[0], ab[1]), worst, 3e-7)
				in := append([]float32(nil), x...)
				expAffine(in, in, ab[0], ab[1])
				bias := make([]float32, n)
				for i := range bias {
					bias[i] = ab[1]
				}
				viaBias := make([]float32, n)
				expBias(viaBias, x, ab[0], bias)
				for i := range in {
					if in[i] != got[i] || viaBias[i] != got[i] {
						t.Fatalf("element %d: in place %v, with a bias vector %v, want %v", i, in[i], viaBias[i], got[i])
					}
				}
			}
		}
	})
}
