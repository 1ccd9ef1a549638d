package scaling_test

import (
	"fmt"

	"github.com/mambago/mamba/internal/scaling"
)

// Chinchilla's fitted law and its compute-optimal allocation.
func ExampleLaw_Exponents() {
	l := scaling.Law{E: 1.69, A: 406.4, Alpha: 0.34, B: 410.7, Beta: 0.28}
	a, b := l.Exponents()
	n, loss := l.Optimal(5.76e23, 6) // Chinchilla's compute
	fmt.Printf("N_opt ∝ C^%.2f, D_opt ∝ C^%.2f\n", a, b)
	fmt.Printf("at 5.76e23 FLOPs: N_opt = %.1fB, L = %.3f\n", n/1e9, loss)
	// Output:
	// N_opt ∝ C^0.45, D_opt ∝ C^0.55
	// at 5.76e23 FLOPs: N_opt = 32.2B, L = 1.931
}
