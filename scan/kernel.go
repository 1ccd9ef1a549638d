package scan

import "github.com/mambago/mamba/internal/math32"

// The inner loops over (time, state) of one channel and one chunk. The per-step scalars (Δ_t,
// Δ_t·u_t, ĝ_t, and the outputs y_t, s1_t, s2_t) are element t·stride of their slices: a
// channel's column of the caller's (time, channel) tiles. The loops over State touch only
// contiguous rows: B and C rows of the chunk ((steps, State), row-major), the channel's row of
// A, and the chunk scratch. They, and duDeltaRow (a loop over the channels of a token row), are
// replaced by AVX2/FMA versions where the CPU has them (kernel_amd64.go); the pure-Go ones here
// are the fallback and the specification.

// scanRecompute runs the states from hstart over the steps, h_t = Ā_t⊙h_{t−1} + du_t·B_t with
// Ā_t = exp(dt_t·A), writes y_t = C_t·h_t and keeps every Ā_t and h_t in abar and hs
// ((steps, State)): the forward pass (which then keeps only the last row) and the backward's
// recomputation.
var scanRecompute = scanRecomputeGo

// scanReverse walks the steps backwards with the adjoint μ (d(loss)/d(h) from later steps):
//
//	λ_t = gh_t·C_t + μ,  dc_t += gh_t·h_t,  db_t += du_t·λ_t,  s1_t = λ_t·B_t,
//	q = λ_t⊙Ā_t⊙h_{t−1},  s2_t = A·q,  dA += dt_t·q,  μ ← Ā_t⊙λ_t
//
// with h_{−1} = hstart, Ā and h from scanRecompute, db and dc rows of (steps, State).
var scanReverse = scanReverseGo

// scanAdjoint walks the steps backwards carrying only the adjoint, μ ← Ā_t⊙(gh_t·C_t + μ)
// (time mode's first backward pass). abar is scratch of State elements.
var scanAdjoint = scanAdjointGo

// duDeltaRow computes one token row of the backward's row pass (block.go), the channels of the
// row being the elements: du = D·ĝ + Δ·s1 and dδ = (u·s1 + s2)·dΔ/dδ, and adds ĝ·u and dδ to the
// running sums of dD and d(bias).
var duDeltaRow = duDeltaRowGo

func scanRecomputeGo(hstart, A, B, C, dt, du, y, abar, hs []float32, steps, stride int) {
	N := len(A)
	lo, hi := math32.Bounds(A)
	prev := hstart[:N]
	for t := range steps {
		st := t * stride
		x := du[st]
		Bt, Ct := B[t*N:][:N], C[t*N:][:N]
		a, cur := abar[t*N:][:N], hs[t*N:][:N]
		math32.ExpRow(a, A, dt[st], lo, hi)
		hp := prev[:N]
		var yt float32
		for n, e := range a {
			v := e*hp[n] + x*Bt[n]
			cur[n] = v
			yt += Ct[n] * v
		}
		y[st] = yt
		prev = cur
	}
}

func scanReverseGo(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 []float32, steps, stride int) {
	N := len(A)
	mu, dA = mu[:N], dA[:N]
	for t := steps - 1; t >= 0; t-- {
		st := t * stride
		hp := hstart[:N]
		if t > 0 {
			hp = hs[(t-1)*N:][:N]
		}
		Bt, Ct := B[t*N:][:N], C[t*N:][:N]
		a, cur := abar[t*N:][:N], hs[t*N:][:N]
		dbt, dct := db[t*N:][:N], dc[t*N:][:N]
		g, d, dtt := gh[st], du[st], dt[st]
		s1[st], s2[st] = reverseRow(mu, dA, A, Ct, Bt, a, hp, cur, dbt, dct, g, d, dtt)
	}
}

// reverseRow is one step of scanReverseGo over the states: it updates μ, dA and the step's rows
// of dB and dC in place and returns Σ_n λ·B and Σ_n A·q. It is a function of its own so that the
// compiler keeps its slices and its index in registers: inside the loop over steps they spilled.
func reverseRow(mu, dA, A, Ct, Bt, a, hp, h, dbt, dct []float32, g, d, dtt float32) (x1, x2 float32) {
	N := len(A)
	mu, dA, Ct, Bt, a, hp, h, dbt, dct = mu[:N], dA[:N], Ct[:N], Bt[:N], a[:N], hp[:N], h[:N], dbt[:N], dct[:N]
	for n, an := range A {
		dct[n] += g * h[n]
		lam := Ct[n]*g + mu[n]
		m := a[n] * lam
		q := m * hp[n]
		dbt[n] += lam * d
		x1 += lam * Bt[n]
		x2 += an * q
		dA[n] += dtt * q
		mu[n] = m
	}
	return x1, x2
}

func scanAdjointGo(mu, A, C, dt, gh, abar []float32, steps, stride int) {
	N := len(A)
	mu, abar = mu[:N], abar[:N]
	lo, hi := math32.Bounds(A)
	for t := steps - 1; t >= 0; t-- {
		Ct, g := C[t*N:][:N], gh[t*stride]
		math32.ExpRow(abar, A, dt[t*stride], lo, hi)
		for n, a := range abar {
			mu[n] = a * (Ct[n]*g + mu[n])
		}
	}
}

// A loop of its own, with a loop for each sum, so that the compiler keeps its slices in
// registers.
func duDeltaRowGo(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 []float32) {
	w := len(u)
	gu, gd, sumD, sumBias, D, gh, dt, ddt, s1, s2 = gu[:w], gd[:w], sumD[:w], sumBias[:w], D[:w], gh[:w], dt[:w], ddt[:w], s1[:w], s2[:w]
	for j, uj := range u {
		gu[j] = D[j]*gh[j] + dt[j]*s1[j]
		sumD[j] += gh[j] * uj
	}
	for j, uj := range u {
		dDelta := (uj*s1[j] + s2[j]) * ddt[j]
		gd[j] = dDelta
		sumBias[j] += dDelta
	}
}
