# Predicted step time and efficiency of data-parallel training on N machines, one
# rank per machine, for the ladder's configs (weak scaling: each rank keeps its
# config's batch_size × grad_accum). Usage: awk -f experiments/mpi/predict.awk
# [-v F=FLOP/s -v kappa=s/float] (defaults below).
#
#   compute   T_c = G · T_mb,  T_mb = batch·seq·FLOPs/token / F
#   one collective (reduce-scatter or allgather) of the padded gradient P' = N·pieces·c:
#             T_coll = (N−1)·pieces·c·4 / B  +  pieces·(N−1)·α  +  κ·P
#             (bandwidth, one latency per peer per ≤ 4 MB call, local copies and sums)
#   exposed   T_x = 2·T_coll + (G−1)·max(0, T_coll − T_mb)
#             (the last reduce-scatter and the allgather wait; the others run during
#             the next micro-batch)
#   step      T_c + T_x,  efficiency T_c / (T_c + T_x)
BEGIN {
	if (F == "") F = 365e9        # FLOP/s of one 16-core machine: train bench on the bench model, 32,151 tokens/s (README, Performance)
	if (kappa == "") kappa = 2e-9  # s per gradient float per collective: packing, summing, unpacking on one core (copy 0.6–0.8 ns, optim.AddGrad 1.4 ns per float on the dev box)
	split("mamba-0.1m mamba-0.5m mamba-2m mamba-8m mamba-30m mamba-130m", name)
	split("114560 499328 2063040 7812480 29105920 129135360", P)     # configs/configs.go
	split("7.711e5 3.219e6 1.305e7 4.822e7 1.777e8 7.829e8", flops) # layers.Config.FLOPsPerToken
	split("8192 8192 8192 8192 8192 16384", tokens)                  # batch_size × seq_len
	split("1 1 1 1 1 4", G)                                          # optim.grad_accum
	split("10 100", gbps)
	split("30e-6 5e-6", alpha) # per-message latency: TCP over 10 GbE; RDMA at 100 Gb/s
	split("2 4 8 16 32 64", ns)
	for (k = 1; k <= 2; k++) {
		B = gbps[k] * 1e9 / 8
		printf "\n**%d Gb/s** (α = %g µs): step time (efficiency) on N machines\n\n| model | params | 1 machine |", gbps[k], alpha[k] * 1e6
		for (i = 1; i <= 6; i++) printf " N = %d |", ns[i]
		printf "\n|---|---|---|"
		for (i = 1; i <= 6; i++) printf "---|"
		printf "\n"
		for (m = 1; m <= 6; m++) {
			tmb = tokens[m] * flops[m] / F
			tc = G[m] * tmb
			printf "| %s | %.3g M | %s |", name[m], P[m] / 1e6, dur(tc)
			for (i = 1; i <= 6; i++) {
				N = ns[i]
				chunk = int((P[m] + N - 1) / N)
				c = int(1048576 / N)
				if (c > chunk) c = chunk
				pieces = int((chunk + c - 1) / c)
				c = int((chunk + pieces - 1) / pieces)
				coll = (N - 1) * pieces * c * 4 / B + pieces * (N - 1) * alpha[k] + kappa * P[m]
				x = 2 * coll
				if (coll > tmb) x += (G[m] - 1) * (coll - tmb)
				printf " %s (%.0f%%) |", dur(tc + x), 100 * tc / (tc + x)
			}
			printf "\n"
		}
	}
}

function dur(s) {
	if (s < 1) return sprintf("%.0f ms", s * 1e3)
	return sprintf("%.3g s", s)
}
