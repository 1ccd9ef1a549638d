package scan

import "github.com/mambago/mamba/internal/math32"

// The inner loops over (time, state) of one channel and one chunk. The per-step scalars (Δ_t,
// Δ_t·u_t, ĝ_t, and the outputs y_t, s1_t, s2_t) are element t·stride of their slices: a
// channel's column of the caller's (time, channel) tiles. The loops over State touch only
// contiguous rows: B and C rows of the chunk ((steps, State), row-major), the channel's row of
// A, and the chunk scratch. Ā comes from math32.ExpScaledRows, so the exp is math32's on every
// path; the linear loops (recur, reverse, adjoint) and duDeltaRow (a loop over the channels of
// a token row) run in assembly where math32's path is a vector one (kernel_amd64.go), and the
// pure-Go versions here are the fallback and the specification.

// scanRecompute runs the states from hstart over the steps, h_t = Ā_t⊙h_{t−1} + du_t·B_t with
// Ā_t = exp(dt_t·A), writes y_t = C_t·h_t and keeps every Ā_t and h_t in abar and hs
// ((steps, State)): the forward pass (which then keeps only the last row) and the backward's
// recomputation.
func scanRecompute(hstart, A, B, C, dt, du, y, abar, hs []float32, steps, stride int) {
	N := len(A)
	math32.ExpScaledRows(abar[:steps*N], N, dt, stride, A, 0)
	recur(hstart, abar, B, C, du, y, hs, steps, N, stride, N, false)
}

// scanAdjoint walks the steps backwards carrying only the adjoint, μ ← Ā_t⊙(gh_t·C_t + μ)
// (time mode's first backward pass). abar is scratch of steps·State elements.
func scanAdjoint(mu, A, C, dt, gh, abar []float32, steps, stride int) {
	N := len(A)
	math32.ExpScaledRows(abar[:steps*N], N, dt, stride, A, 0)
	adjoint(mu, abar, C, gh, steps, N, stride)
}

// recurGo is recur's Go path: iterations i < steps of
//
//	h_i = Ā_i⊙h_{i−1} + x_i·B_i,  y_i = C_i·h_i
//
// with Ā_i and h_i row i of abar and hs ((steps, n)), B_i and C_i at i·bstride, x_i = du and
// y_i at i·stride. In a sequence (inPlace false) h_{−1} = h0 and h_{i−1} is the previous row of
// hs. With inPlace each iteration is a channel of its own whose row of hs is its state, updated
// in place (h0 is hs): Stepper's step, with bstride 0.
func recurGo(h0, abar, B, C, du, y, hs []float32, steps, n, stride, bstride int, inPlace bool) {
	for i := range steps {
		prev := h0[:n]
		switch {
		case inPlace:
			prev = hs[i*n:][:n]
		case i > 0:
			prev = hs[(i-1)*n:][:n]
		}
		y[i*stride] = recurRow(hs[i*n:][:n], prev, abar[i*n:][:n], B[i*bstride:][:n], C[i*bstride:][:n], du[i*stride])
	}
}

// recurRow is one iteration of recurGo over the states (h may be prev). A function of its own
// so that the compiler keeps its slices in registers.
func recurRow(h, prev, a, Bt, Ct []float32, x float32) (y float32) {
	N := len(a)
	h, prev, Bt, Ct = h[:N], prev[:N], Bt[:N], Ct[:N]
	for n, e := range a {
		v := e*prev[n] + x*Bt[n]
		h[n] = v
		y += Ct[n] * v
	}
	return y
}

// scanReverseGo is scanReverse's Go path: it walks the steps backwards with the adjoint μ
// (d(loss)/d(h) from later steps):
//
//	λ_t = gh_t·C_t + μ,  dc_t += gh_t·h_t,  db_t += du_t·λ_t,  s1_t = λ_t·B_t,
//	q = λ_t⊙Ā_t⊙h_{t−1},  s2_t = A·q,  dA += dt_t·q,  μ ← Ā_t⊙λ_t
//
// with h_{−1} = hstart, Ā and h from scanRecompute, db and dc rows of (steps, State).
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

// adjointGo is adjoint's Go path: μ ← Ā_t⊙(gh_t·C_t + μ) for t = steps−1 … 0, Ā_t row t of abar.
func adjointGo(mu, abar, C, gh []float32, steps, n, stride int) {
	mu = mu[:n]
	for t := steps - 1; t >= 0; t-- {
		a, Ct, g := abar[t*n:][:n], C[t*n:][:n], gh[t*stride]
		for j, e := range a {
			mu[j] = e * (Ct[j]*g + mu[j])
		}
	}
}

// duDeltaRowGo is duDeltaRow's Go path: one token row of the backward's row pass (block.go),
// the channels of the row being the elements: du = D·ĝ + Δ·s1 and dδ = (u·s1 + s2)·dΔ/dδ, and
// it adds ĝ·u and dδ to the running sums of dD and d(bias). A loop of its own, with a loop for
// each sum, so that the compiler keeps its slices in registers.
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
