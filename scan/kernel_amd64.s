//go:build !purego

#include "textflag.h"

// The linear loops of the scan, written once as macros over register arguments and
// instantiated for 8 lanes (Y registers, AVX2) and 16 lanes (Z registers, AVX-512): each
// function takes wide and runs one or the other. No exp here: Ā comes from math32.

// HSUM8 and HSUM16 leave in X4 (lane 0) the sum of the lanes of V, whose low halves are Y and X;
// HSUM16 clobbers Y3.
#define HSUM8(V, Y, X) \
	VEXTRACTF128 $1, Y, X4 \
	VADDPS X4, X, X4 \
	VHADDPS X4, X4, X4 \
	VHADDPS X4, X4, X4
#define HSUM16(V, Y, X) \
	VEXTRACTF64X4 $1, V, Y3 \
	VADDPS Y3, Y, Y3 \
	VEXTRACTF128 $1, Y3, X4 \
	VADDPS X4, X3, X4 \
	VHADDPS X4, X4, X4 \
	VHADDPS X4, X4, X4

// The recurrence and the reverse pass carry a value from step to step (h; μ and dA). When a
// row is one or two vectors (State 16 on either width, 32 on AVX-512) the carried values stay
// in registers: through memory every step would wait for a store to be forwarded to the next
// load. The register variants compute the same operations in the same order as the general
// loop, so every variant gives the same bits.

// RECUR runs recurVec's iterations: h = Ā⊙h_prev + x·B into the row at BX and y = Σ C⊙h;
// then the next h_prev is the row just written (SI = 0) or the next one (SI = row bytes, in
// place). DI h_prev, R13 Ā, R8 B, R9 C, R10 x, R11 y, CX iterations, DX row bytes, R12 stride
// bytes. RHEAD and RTAIL open and close an iteration.
#define RHEAD(V12, V13) \
	VBROADCASTSS (R10), V13 \
	VXORPS V12, V12, V12
#define RTAIL(step, HSUMW, V12) \
	HSUMW(V12, Y12, X12) \
	VMOVSS X4, (R11) \
	ADDQ DX, BX \
	ADDQ DX, R13 \
	ADDQ bstride+80(FP), R8 \
	ADDQ bstride+80(FP), R9 \
	ADDQ R12, R10 \
	ADDQ R12, R11 \
	DECQ CX \
	JNZ step
#define RECUR(step, state, W, HSUMW, V1, V3, V12, V13) \
step: \
	RHEAD(V12, V13) \
	XORQ AX, AX \
state: \
	VMULPS (R8)(AX*1), V13, V3 \
	VMOVUPS (R13)(AX*1), V1 \
	VFMADD231PS (DI)(AX*1), V1, V3 \
	VMOVUPS V3, (BX)(AX*1) \
	VFMADD231PS (R9)(AX*1), V3, V12 \
	ADDQ W, AX \
	CMPQ AX, DX \
	JLT state \
	LEAQ (BX)(SI*1), DI \
	RTAIL(step, HSUMW, V12)

// RVEC is RECUR's work on the vector at byte off of the row, with h_prev in register H.
#define RVEC(off, H, V3, V12, V13) \
	VMULPS off(R8), V13, V3 \
	VFMADD231PS off(R13), H, V3 \
	VMOVAPS V3, H \
	VMOVUPS V3, off(BX) \
	VFMADD231PS off(R9), V3, V12

// RECURS dispatches on the row (DX bytes, W a vector) and inPlace: rows of one or two vectors of
// a sequence keep h in H0 (and H1), others run RECUR.
#define RECURS(gen, one, two, s0, s1, s2, st, W, WB, TWOWB, HSUMW, V1, V3, V12, V13, H0, H1) \
	CMPB inPlace+88(FP), $0 \
	JNE gen \
	CMPQ DX, WB \
	JEQ one \
	CMPQ DX, TWOWB \
	JEQ two \
gen: \
	RECUR(s0, st, WB, HSUMW, V1, V3, V12, V13) \
	VZEROUPPER \
	RET \
one: \
	VMOVUPS (DI), H0 \
s1: \
	RHEAD(V12, V13) \
	RVEC(0, H0, V3, V12, V13) \
	RTAIL(s1, HSUMW, V12) \
	VZEROUPPER \
	RET \
two: \
	VMOVUPS (DI), H0 \
	VMOVUPS W(DI), H1 \
s2: \
	RHEAD(V12, V13) \
	RVEC(0, H0, V3, V12, V13) \
	RVEC(W, H1, V3, V12, V13) \
	RTAIL(s2, HSUMW, V12) \
	VZEROUPPER \
	RET

// REVERSE walks the steps t = CX … 0 backwards (see scanReverseGo). Row pointers point at the
// end of their row: DI μ, SI A, DX dA; R8 B_t, R9 C_t, R10 Ā_t, R11 h_t, R12 h_{t−1}, R13 db_t,
// BX dc_t. The per-step scalars are t·stride in; n and stride are kept in bytes in their
// argument slots. REVHEAD opens a step (V15 Δ_t, V14 Δ_t·u_t, V13 ĝ_t, R12, the sums V12 of
// λ·B and V11 of A·q zeroed; AX = row bytes); REVTAIL stores the sums and moves to the next.
#define REVHEAD(rows, V11, V12, V13, V14, V15) \
	MOVQ stride+136(FP), R12 \
	IMULQ CX, R12 \
	MOVQ dt+80(FP), AX \
	VBROADCASTSS (AX)(R12*1), V15 \
	MOVQ du+88(FP), AX \
	VBROADCASTSS (AX)(R12*1), V14 \
	MOVQ gh+96(FP), AX \
	VBROADCASTSS (AX)(R12*1), V13 \
	MOVQ n+128(FP), AX \
	MOVQ R11, R12 \
	SUBQ AX, R12 /* h_{t−1} is the row before h_t */ \
	TESTQ CX, CX \
	JNZ rows \
	MOVQ hstart+48(FP), R12 /* except at t = 0 */ \
	ADDQ AX, R12 \
rows: \
	VXORPS V12, V12, V12 \
	VXORPS V11, V11, V11
#define REVTAIL(step, end, HSUMW, V11, V12) \
	MOVQ stride+136(FP), R12 \
	IMULQ CX, R12 \
	HSUMW(V12, Y12, X12) \
	MOVQ s1+104(FP), AX \
	VMOVSS X4, (AX)(R12*1) \
	HSUMW(V11, Y11, X11) \
	MOVQ s2+112(FP), AX \
	VMOVSS X4, (AX)(R12*1) \
	TESTQ CX, CX \
	JZ end \
	MOVQ n+128(FP), AX \
	SUBQ AX, R8 \
	SUBQ AX, R9 \
	SUBQ AX, R10 \
	SUBQ AX, R11 \
	SUBQ AX, R13 \
	SUBQ AX, BX \
	DECQ CX \
	JMP step \
end:

// REVVEC is the reverse pass's work on one vector of the rows, at address M(row): AT, the
// element AX of the general loop, or ENDk, k bytes before the rows' ends (MU, DA and AR hold μ,
// dA and A: registers in the register variants).
#define AT(r) (r)(AX*1)
#define END32(r) -32(r)
#define END64(r) -64(r)
#define END128(r) -128(r)
#define REVVEC(M, MU, DA, AR, V0, V2, V3, V4, V11, V12, V13, V14, V15) \
	VMOVAPS MU, V0 \
	VFMADD231PS M(R9), V13, V0 /* λ = C·ĝ + μ */ \
	VMULPS M(R10), V0, V2 /* Ā·λ */ \
	VMOVAPS V2, MU /* μ ← Ā·λ */ \
	VMULPS M(R12), V2, V2 /* q = λ·Ā·h_{t−1} */ \
	VMOVUPS M(BX), V3 \
	VFMADD231PS M(R11), V13, V3 /* dc += ĝ·h */ \
	VMOVUPS V3, M(BX) \
	VMOVUPS M(R13), V4 \
	VFMADD231PS V0, V14, V4 /* db += Δu·λ */ \
	VMOVUPS V4, M(R13) \
	VFMADD231PS M(R8), V0, V12 /* s1 += λ·B */ \
	VFMADD231PS AR, V2, V11 /* s2 += A·q */ \
	VFMADD231PS V2, V15, DA /* dA += Δ·q */

// REVREG is the reverse pass with μ, dA and A of the row's last vector in registers MU1, DA1,
// AR1 (addressed by NW), and with FIRST = REVVEC (and LOADREG, STOREREG) those of the vector
// before it in MU0, DA0, AR0 (NTWOW); NOVEC, NOLOAD and NOSTORE make it a row of one vector.
#define LOADREG(M, MU, DA, AR) \
	VMOVUPS M(DI), MU \
	VMOVUPS M(DX), DA \
	VMOVUPS M(SI), AR
#define STOREREG(M, MU, DA) \
	VMOVUPS MU, M(DI) \
	VMOVUPS DA, M(DX)
#define NOLOAD(M, MU, DA, AR)
#define NOSTORE(M, MU, DA)
#define NOVEC(M, MU, DA, AR, V0, V2, V3, V4, V11, V12, V13, V14, V15)
#define REVREG(step, rows, end, FIRSTLOAD, FIRST, FIRSTSTORE, NW, NTWOW, HSUMW, V0, V2, V3, V4, V11, V12, V13, V14, V15, MU0, DA0, AR0, MU1, DA1, AR1) \
	FIRSTLOAD(NTWOW, MU0, DA0, AR0) \
	LOADREG(NW, MU1, DA1, AR1) \
step: \
	REVHEAD(rows, V11, V12, V13, V14, V15) \
	FIRST(NTWOW, MU0, DA0, AR0, V0, V2, V3, V4, V11, V12, V13, V14, V15) \
	REVVEC(NW, MU1, DA1, AR1, V0, V2, V3, V4, V11, V12, V13, V14, V15) \
	REVTAIL(step, end, HSUMW, V11, V12) \
	FIRSTSTORE(NTWOW, MU0, DA0) \
	STOREREG(NW, MU1, DA1) \
	VZEROUPPER \
	RET

// REVERSES dispatches on the row (n bytes, WB a vector): rows of one or two vectors keep μ, dA
// and A in registers (REVREG), others loop over the row through memory.
#define REVERSES(one, two, g0, gr, gs, ge, s1, r1, e1, s2, r2, e2, NW, NTWOW, WB, TWOWB, HSUMW, V0, V1, V2, V3, V4, V5, V11, V12, V13, V14, V15, MU0, MU1, DA0, DA1, AR0, AR1) \
	MOVQ n+128(FP), AX \
	CMPQ AX, WB \
	JEQ one \
	CMPQ AX, TWOWB \
	JEQ two \
g0: \
	REVHEAD(gr, V11, V12, V13, V14, V15) \
	NEGQ AX \
gs: \
	VMOVUPS (DI)(AX*1), V1 \
	VMOVUPS (DX)(AX*1), V5 \
	REVVEC(AT, V1, V5, AT(SI), V0, V2, V3, V4, V11, V12, V13, V14, V15) \
	VMOVUPS V1, (DI)(AX*1) \
	VMOVUPS V5, (DX)(AX*1) \
	ADDQ WB, AX \
	JNZ gs \
	REVTAIL(g0, ge, HSUMW, V11, V12) \
	VZEROUPPER \
	RET \
one: \
	REVREG(s1, r1, e1, NOLOAD, NOVEC, NOSTORE, NW, NTWOW, HSUMW, V0, V2, V3, V4, V11, V12, V13, V14, V15, MU0, DA0, AR0, MU1, DA1, AR1) \
two: \
	REVREG(s2, r2, e2, LOADREG, REVVEC, STOREREG, NW, NTWOW, HSUMW, V0, V2, V3, V4, V11, V12, V13, V14, V15, MU0, DA0, AR0, MU1, DA1, AR1)

// ADJOINT: for t = CX−1 … 0, μ ← Ā_t⊙(ĝ_t·C_t + μ). DI μ, R13 Ā_t, R9 C_t, R11 ĝ_t (the rows of
// the last step first), DX row bytes, R12 stride bytes.
#define ADJOINT(step, state, W, V12, V13) \
step: \
	VBROADCASTSS (R11), V13 \
	XORQ AX, AX \
state: \
	VMOVUPS (DI)(AX*1), V12 \
	VFMADD231PS (R9)(AX*1), V13, V12 \
	VMULPS (R13)(AX*1), V12, V12 \
	VMOVUPS V12, (DI)(AX*1) \
	ADDQ W, AX \
	CMPQ AX, DX \
	JLT state \
	SUBQ DX, R13 \
	SUBQ DX, R9 \
	SUBQ R12, R11 \
	DECQ CX \
	JNZ step

// DUDELTA: as duDeltaRowGo, a vector of channels per iteration, with fused multiply-adds. DX
// runs over the bytes of the rows (n, kept in bytes in its argument slot).
#define DUDELTA(loop, W, V0, V1, V2, V3, V4, V5, V6) \
loop: \
	VMOVUPS (R12)(DX*1), V0 /* ĝ */ \
	VMOVUPS (BX)(DX*1), V1 /* s1 */ \
	VMOVUPS (R10)(DX*1), V2 /* u */ \
	VMULPS (R13)(DX*1), V1, V3 /* Δ·s1 */ \
	VFMADD231PS (R11)(DX*1), V0, V3 /* du = D·ĝ + Δ·s1 */ \
	VMOVUPS V3, (DI)(DX*1) \
	VMOVUPS (R8)(DX*1), V4 \
	VFMADD231PS V2, V0, V4 /* sumD += ĝ·u */ \
	VMOVUPS V4, (R8)(DX*1) \
	VMOVUPS (CX)(DX*1), V5 \
	VFMADD231PS V1, V2, V5 /* u·s1 + s2 */ \
	VMULPS (AX)(DX*1), V5, V5 /* dδ */ \
	VMOVUPS V5, (SI)(DX*1) \
	VADDPS (R9)(DX*1), V5, V6 /* sumBias += dδ */ \
	VMOVUPS V6, (R9)(DX*1) \
	ADDQ W, DX \
	CMPQ DX, n+88(FP) \
	JLT loop

// func recurVec(prev, abar, B, C, du, y, hs *float32, steps, n, stride, bstride int, inPlace, wide bool)
// bstride is kept in bytes in its argument slot.
TEXT ·recurVec(SB), NOSPLIT, $0-90
	MOVQ prev+0(FP), DI
	MOVQ abar+8(FP), R13
	MOVQ B+16(FP), R8
	MOVQ C+24(FP), R9
	MOVQ du+32(FP), R10
	MOVQ y+40(FP), R11
	MOVQ hs+48(FP), BX
	MOVQ steps+56(FP), CX
	MOVQ n+64(FP), DX
	SHLQ $2, DX
	MOVQ stride+72(FP), R12
	SHLQ $2, R12
	MOVQ bstride+80(FP), AX
	SHLQ $2, AX
	MOVQ AX, bstride+80(FP)
	XORQ SI, SI
	CMPB inPlace+88(FP), $0
	CMOVQNE DX, SI
	CMPB wide+89(FP), $0
	JNE wide
	RECURS(gen8, one8, two8, rs8, r1s8, r2s8, st8, 32, $32, $64, HSUM8, Y1, Y3, Y12, Y13, Y5, Y6)

wide:
	RECURS(gen16, one16, two16, rs16, r1s16, r2s16, st16, 64, $64, $128, HSUM16, Z1, Z3, Z12, Z13, Z5, Z6)

// func reverseVec(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 *float32, steps, n, stride int, wide bool)
TEXT ·reverseVec(SB), NOSPLIT, $0-145
	MOVQ stride+136(FP), AX
	SHLQ $2, AX
	MOVQ AX, stride+136(FP)
	MOVQ n+128(FP), AX
	SHLQ $2, AX
	MOVQ AX, n+128(FP)
	MOVQ steps+120(FP), CX
	MOVQ CX, R12
	IMULQ AX, R12
	MOVQ mu+0(FP), DI
	ADDQ AX, DI
	MOVQ A+8(FP), SI
	ADDQ AX, SI
	MOVQ dA+72(FP), DX
	ADDQ AX, DX
	MOVQ B+16(FP), R8
	ADDQ R12, R8
	MOVQ C+24(FP), R9
	ADDQ R12, R9
	MOVQ abar+32(FP), R10
	ADDQ R12, R10
	MOVQ hs+40(FP), R11
	ADDQ R12, R11
	MOVQ db+56(FP), R13
	ADDQ R12, R13
	MOVQ dc+64(FP), BX
	ADDQ R12, BX
	DECQ CX
	CMPB wide+144(FP), $0
	JNE wide
	REVERSES(one8, two8, g8, gr8, gs8, ge8, s18, r18, e18, s28, r28, e28, END32, END64, $32, $64, HSUM8, Y0, Y1, Y2, Y3, Y4, Y5, Y11, Y12, Y13, Y14, Y15, Y5, Y6, Y7, Y8, Y9, Y10)

wide:
	REVERSES(one16, two16, g16, gr16, gs16, ge16, s116, r116, e116, s216, r216, e216, END64, END128, $64, $128, HSUM16, Z0, Z1, Z2, Z3, Z4, Z5, Z11, Z12, Z13, Z14, Z15, Z5, Z6, Z7, Z8, Z9, Z10)

// func adjointVec(mu, abar, C, gh *float32, steps, n, stride int, wide bool)
TEXT ·adjointVec(SB), NOSPLIT, $0-57
	MOVQ steps+32(FP), CX
	MOVQ n+40(FP), DX
	SHLQ $2, DX
	MOVQ CX, AX
	DECQ AX
	IMULQ DX, AX // the last row
	MOVQ abar+8(FP), R13
	ADDQ AX, R13
	MOVQ C+16(FP), R9
	ADDQ AX, R9
	MOVQ stride+48(FP), R12
	SHLQ $2, R12
	MOVQ CX, AX
	DECQ AX
	IMULQ R12, AX // the last step's scalar
	MOVQ gh+24(FP), R11
	ADDQ AX, R11
	MOVQ mu+0(FP), DI
	CMPB wide+56(FP), $0
	JNE wide
	ADJOINT(step8, state8, $32, Y12, Y13)
	VZEROUPPER
	RET

wide:
	ADJOINT(step16, state16, $64, Z12, Z13)
	VZEROUPPER
	RET

// func duDeltaVec(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 *float32, n int, wide bool)
TEXT ·duDeltaVec(SB), NOSPLIT, $0-97
	MOVQ gu+0(FP), DI
	MOVQ gd+8(FP), SI
	MOVQ sumD+16(FP), R8
	MOVQ sumBias+24(FP), R9
	MOVQ u+32(FP), R10
	MOVQ D+40(FP), R11
	MOVQ gh+48(FP), R12
	MOVQ dt+56(FP), R13
	MOVQ ddt+64(FP), AX
	MOVQ s1+72(FP), BX
	MOVQ s2+80(FP), CX
	MOVQ n+88(FP), DX
	SHLQ $2, DX
	MOVQ DX, n+88(FP)
	XORQ DX, DX
	CMPB wide+96(FP), $0
	JNE wide
	DUDELTA(loop8, $32, Y0, Y1, Y2, Y3, Y4, Y5, Y6)
	VZEROUPPER
	RET

wide:
	DUDELTA(loop16, $64, Z0, Z1, Z2, Z3, Z4, Z5, Z6)
	VZEROUPPER
	RET

// func prefetchRows(p *float32, rows, stride, width int)
// Prefetches width floats of rows rows, stride floats apart, into the cache.
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ rows+8(FP), CX
	TESTQ CX, CX
	JZ done
	MOVQ p+0(FP), DI
	MOVQ width+24(FP), BX
	SHLQ $2, BX
	MOVQ stride+16(FP), DX
	SHLQ $2, DX

row:
	XORQ AX, AX

line:
	PREFETCHT0 (DI)(AX*1)
	ADDQ $64, AX
	CMPQ AX, BX
	JLT line
	ADDQ DX, DI
	DECQ CX
	JNZ row

done:
	RET
