package scan

// The inner loops over (time, state) of one channel and one chunk. The per-step scalars (Δ_t,
// Δ_t·u_t, ĝ_t, and the outputs y_t, s1_t, s2_t) are element t·stride of their slices: a
// channel's column of the caller's (time, channel) tiles. The loops over State touch only
// contiguous rows: B and C rows of the chunk ((steps, State), row-major), the channel's row of
// A, and the chunk scratch. They are replaced by AVX2/FMA versions where the
// CPU has them (kernel_amd64.go); the pure-Go ones here are the fallback and the specification.

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

func scanRecomputeGo(hstart, A, B, C, dt, du, y, abar, hs []float32, steps, stride int) {
	N := len(A)
	prev := hstart[:N]
	for t := range steps {
		st := t * stride
		Bt, Ct := B[t*N:][:N], C[t*N:][:N]
		a, cur := abar[t*N:][:N], hs[t*N:][:N]
		expScaled(a, A, dt[st])
		var yt float32
		for n, an := range a {
			v := an*prev[n] + du[st]*Bt[n]
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
		var x1, x2 float32
		for n, an := range A {
			lam := Ct[n]*g + mu[n]
			q := lam * a[n] * hp[n]
			dct[n] += g * cur[n]
			dbt[n] += lam * d
			x1 += lam * Bt[n]
			x2 += an * q
			dA[n] += dtt * q
			mu[n] = a[n] * lam
		}
		s1[st], s2[st] = x1, x2
	}
}

func scanAdjointGo(mu, A, C, dt, gh, abar []float32, steps, stride int) {
	N := len(A)
	mu, abar = mu[:N], abar[:N]
	for t := steps - 1; t >= 0; t-- {
		Ct, g := C[t*N:][:N], gh[t*stride]
		expScaled(abar, A, dt[t*stride])
		for n, a := range abar {
			mu[n] = a * (Ct[n]*g + mu[n])
		}
	}
}
