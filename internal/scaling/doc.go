// Package scaling fits scaling laws to training runs and plots them.
//
// Chinchilla's approach 3 (Hoffmann et al. 2022; Besiroglu et al. 2024, Epoch AI's
// replication): the final loss of a model of N non-embedding parameters trained on D
// tokens is modelled as
//
//	L(N, D) = E + A/N^α + B/D^β
//
// and fitted in the log-sum-exp parametrisation A = eᵃ, B = eᵇ, E = eᵉ,
//
//	log L̂(N, D) = LSE(a − α log N, b − β log D, e)
//
// by minimising Σᵢ Huber_δ(log L̂ᵢ − log Lᵢ), δ = 1e-3, where Huber_δ(r) = r²/2 for
// |r| ≤ δ and δ(|r| − δ/2) beyond, with BFGS (gonum/optimize). The starting points
// are Hoffmann et al.'s grid α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1},
// a, b ∈ {0, 5, …, 25} (4,500 points): the objective is evaluated on all of them and
// BFGS starts from the Starts lowest; the lowest optimum wins. (On the test laws this
// finds the optimum of BFGS from every grid point, 30 times faster.) Minimising L at fixed
// compute C ≈ k·N·D gives the compute-optimal allocation
//
//	N_opt ∝ C^a, D_opt ∝ C^b,   a = β/(α+β), b = α/(α+β).
//
// 95% intervals come from the bootstrap: the runs are resampled with replacement
// (a fixed seed), refitted from the full fit's optimum and a corner of the grid,
// and the 2.5th and 97.5th percentiles of each parameter are taken (gonum/stat).
//
// Approach 1, on final losses: runs are grouped into compute buckets (within a
// factor BucketRatio), the lowest loss of each bucket is a point of the loss
// envelope, and log N_opt and log D_opt are regressed on log C.
package scaling
