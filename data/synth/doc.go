// Package synth streams the synthetic tasks of the Mamba paper (§4.1) as
// data Sources: nothing is stored, batch k of row r is drawn from
// rng(seed, k, r), so a stream is deterministic by seed and resumable from
// its cursor. Targets are -1 everywhere except the answer positions, and
// Accuracy scores predictions on the answer positions only.
//
// Selective copying (Len L, Data n, Vocab V; paper: V 16, L 4096, n 16).
// Tokens: 0 noise, 1 marker, data values 2..V-1. The first L-n positions
// are noise with n data tokens at uniformly random distinct positions; the
// last n positions hold the marker. The model must emit the data tokens in
// order at the marker positions:
//
//	inputs   0 0 5 0 0 9 0 3 0 0 | 1 1 1
//	targets  -1 …             -1 | 5 9 3
//
// Induction heads (Len L, Vocab V; paper: V 16, train L 256, test up to
// 2^20). Token V-1 is the trigger; the others are drawn uniformly from
// 0..V-2. The trigger appears at a random position p ≤ L-3 followed by the
// token x to recall, and again at the last position, where the target is x:
//
//	inputs   4 7 T x 2 … 6 T
//	targets  -1 …          x
package synth
