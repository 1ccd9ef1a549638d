#include "textflag.h"

// Rows of ·vecConsts (32 bytes each).
#define LOG2E ·vecConsts+0(SB)
#define MAGIC ·vecConsts+32(SB)
#define NLN2HI ·vecConsts+64(SB)
#define NLN2LO ·vecConsts+96(SB)
#define C6 ·vecConsts+128(SB)
#define C5 ·vecConsts+160(SB)
#define C4 ·vecConsts+192(SB)
#define C3 ·vecConsts+224(SB)
#define C2 ·vecConsts+256(SB)
#define C1 ·vecConsts+288(SB)
#define ONE ·vecConsts+320(SB)
#define EXPLO ·vecConsts+352(SB)
#define EXPHI ·vecConsts+384(SB)
#define BIAS ·vecConsts+416(SB)
#define TWO ·vecConsts+448(SB)
#define L3 ·vecConsts+480(SB)
#define L5 ·vecConsts+512(SB)
#define L7 ·vecConsts+544(SB)
#define L9 ·vecConsts+576(SB)
#define L11 ·vecConsts+608(SB)
#define L13 ·vecConsts+640(SB)
#define THRESHOLD ·vecConsts+672(SB)
#define ABSMASK ·vecConsts+704(SB)

// EXPCONSTS loads the constants EXP8 keeps in registers: Y5 magic, Y6 log2e, Y7 −ln2Hi,
// Y8 −ln2Lo, Y9 c5, Y10 c4, Y11 c3, Y15 c2.
#define EXPCONSTS \
	VMOVUPS MAGIC, Y5 \
	VMOVUPS LOG2E, Y6 \
	VMOVUPS NLN2HI, Y7 \
	VMOVUPS NLN2LO, Y8 \
	VMOVUPS C5, Y9 \
	VMOVUPS C4, Y10 \
	VMOVUPS C3, Y11 \
	VMOVUPS C2, Y15

// EXP8 sets Y1 = exp(Y0) in eight lanes, as exp32: Y4 = !(x < expLo) masks what would be
// subnormal to 0 and keeps NaN; x is clamped at expHi (larger arguments saturate at
// exp(expHi) ≈ 2.4e38; VMINPS returns its second source, x, for NaN, so NaN stays NaN);
// t = x·log2e + magic rounds k = x/ln2 into the low bits; r = x − k·ln2Hi − k·ln2Lo;
// p = e^r by Horner's scheme; 2^k = (bits(t) − (magicBits − 127)) << 23. Needs EXPCONSTS;
// clobbers Y0, Y2-Y4.
#define EXP8 \
	VCMPPS $0x05, EXPLO, Y0, Y4 \
	VMOVUPS EXPHI, Y1 \
	VMINPS Y0, Y1, Y0 \
	VMOVAPS Y5, Y2 \
	VFMADD231PS Y6, Y0, Y2 \
	VSUBPS Y5, Y2, Y3 \
	VFMADD231PS Y7, Y3, Y0 \
	VFMADD231PS Y8, Y3, Y0 \
	VMOVUPS C6, Y1 \
	VFMADD213PS Y9, Y0, Y1 \
	VFMADD213PS Y10, Y0, Y1 \
	VFMADD213PS Y11, Y0, Y1 \
	VFMADD213PS Y15, Y0, Y1 \
	VFMADD213PS C1, Y0, Y1 \
	VFMADD213PS ONE, Y0, Y1 \
	VPSUBD BIAS, Y2, Y2 \
	VPSLLD $23, Y2, Y2 \
	VMULPS Y2, Y1, Y1 \
	VANDPS Y4, Y1, Y1

// HSUM sets X4 (lane 0) to the sum of the eight lanes of Y, whose low half is X.
#define HSUM(Y, X) \
	VEXTRACTF128 $1, Y, X4 \
	VADDPS X4, X, X4 \
	VHADDPS X4, X4, X4 \
	VHADDPS X4, X4, X4

// func recomputeAVX2(hstart, A, B, C, dt, du, y, abar, hs *float32, steps, n, stride int)
// dt, du and y advance by stride elements a step (kept in bytes in stride's argument slot).
TEXT ·recomputeAVX2(SB), NOSPLIT, $0-96
	MOVQ hstart+0(FP), DI // h_{t−1}
	MOVQ A+8(FP), SI
	MOVQ B+16(FP), R8
	MOVQ C+24(FP), R9
	MOVQ dt+32(FP), R10
	MOVQ du+40(FP), R11
	MOVQ y+48(FP), R12
	MOVQ abar+56(FP), R13
	MOVQ hs+64(FP), BX // h_t
	MOVQ steps+72(FP), CX
	MOVQ n+80(FP), DX
	SHLQ $2, DX
	MOVQ stride+88(FP), AX
	SHLQ $2, AX
	MOVQ AX, stride+88(FP)
	EXPCONSTS

recStep:
	VBROADCASTSS (R10), Y14
	VBROADCASTSS (R11), Y13
	VXORPS Y12, Y12, Y12
	XORQ AX, AX

recState:
	VMULPS (SI)(AX*1), Y14, Y0
	EXP8
	VMOVUPS Y1, (R13)(AX*1) // keep Ā_t
	VMULPS (R8)(AX*1), Y13, Y3
	VFMADD231PS (DI)(AX*1), Y1, Y3
	VMOVUPS Y3, (BX)(AX*1) // keep h_t
	VFMADD231PS (R9)(AX*1), Y3, Y12
	ADDQ $32, AX
	CMPQ AX, DX
	JLT recState

	HSUM(Y12, X12)
	VMOVSS X4, (R12)
	MOVQ BX, DI // h_{t−1} of the next step
	ADDQ DX, BX
	ADDQ DX, R13
	ADDQ DX, R8
	ADDQ DX, R9
	ADDQ stride+88(FP), R10
	ADDQ stride+88(FP), R11
	ADDQ stride+88(FP), R12
	DECQ CX
	JNZ recStep
	VZEROUPPER
	RET

// func reverseAVX2(mu, A, B, C, abar, hs, hstart, db, dc, dA, dt, du, gh, s1, s2 *float32, steps, n, stride int)
//
// Row pointers point at the end of their row and AX runs from −(row bytes) up to 0:
// DI μ, SI A, DX dA; R8 B_t, R9 C_t, R10 Ā_t, R11 h_t, R12 h_{t−1}, R13 db_t, BX dc_t, the
// rows of step t = CX, walking backwards. The per-step scalars are t·stride elements in.
TEXT ·reverseAVX2(SB), NOSPLIT, $0-144
	MOVQ stride+136(FP), AX
	SHLQ $2, AX
	MOVQ AX, stride+136(FP)
	MOVQ n+128(FP), AX
	SHLQ $2, AX
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

revStep:
	MOVQ stride+136(FP), R12
	IMULQ CX, R12
	MOVQ dt+80(FP), AX
	VBROADCASTSS (AX)(R12*1), Y15 // Δ_t
	MOVQ du+88(FP), AX
	VBROADCASTSS (AX)(R12*1), Y14 // Δ_t·u_t
	MOVQ gh+96(FP), AX
	VBROADCASTSS (AX)(R12*1), Y13 // ĝ_t
	MOVQ n+128(FP), AX
	SHLQ $2, AX
	MOVQ R11, R12
	SUBQ AX, R12 // h_{t−1} is the row before h_t
	TESTQ CX, CX
	JNZ revRows
	MOVQ hstart+48(FP), R12 // except at t = 0
	ADDQ AX, R12

revRows:
	VXORPS Y12, Y12, Y12 // Σ λ·B
	VXORPS Y11, Y11, Y11 // Σ A·q
	NEGQ AX

revState:
	VMOVUPS (DI)(AX*1), Y0
	VFMADD231PS (R9)(AX*1), Y13, Y0 // λ = C·ĝ + μ
	VMOVUPS (R10)(AX*1), Y1
	VMULPS Y0, Y1, Y2 // Ā·λ
	VMOVUPS Y2, (DI)(AX*1) // μ ← Ā·λ
	VMULPS (R12)(AX*1), Y2, Y2 // q = λ·Ā·h_{t−1}
	VMOVUPS (BX)(AX*1), Y3
	VFMADD231PS (R11)(AX*1), Y13, Y3 // dc += ĝ·h
	VMOVUPS Y3, (BX)(AX*1)
	VMOVUPS (R13)(AX*1), Y4
	VFMADD231PS Y0, Y14, Y4 // db += Δu·λ
	VMOVUPS Y4, (R13)(AX*1)
	VFMADD231PS (R8)(AX*1), Y0, Y12 // s1 += λ·B
	VFMADD231PS (SI)(AX*1), Y2, Y11 // s2 += A·q
	VMOVUPS (DX)(AX*1), Y5
	VFMADD231PS Y2, Y15, Y5 // dA += Δ·q
	VMOVUPS Y5, (DX)(AX*1)
	ADDQ $32, AX
	JNZ revState

	MOVQ stride+136(FP), R12
	IMULQ CX, R12
	HSUM(Y12, X12)
	MOVQ s1+104(FP), AX
	VMOVSS X4, (AX)(R12*1)
	HSUM(Y11, X11)
	MOVQ s2+112(FP), AX
	VMOVSS X4, (AX)(R12*1)
	TESTQ CX, CX
	JZ revEnd
	MOVQ n+128(FP), AX
	SHLQ $2, AX
	SUBQ AX, R8
	SUBQ AX, R9
	SUBQ AX, R10
	SUBQ AX, R11
	SUBQ AX, R13
	SUBQ AX, BX
	DECQ CX
	JMP revStep

revEnd:
	VZEROUPPER
	RET

// func adjointAVX2(mu, A, C, dt, gh *float32, steps, n, stride int)
// Steps t = steps−1 … 0: μ ← exp(Δ_t·A)⊙(ĝ_t·C_t + μ). R9 points at the start of row C_t,
// R8 is t·stride in bytes.
TEXT ·adjointAVX2(SB), NOSPLIT, $0-64
	MOVQ mu+0(FP), DI
	MOVQ A+8(FP), SI
	MOVQ dt+24(FP), R10
	MOVQ gh+32(FP), R11
	MOVQ steps+40(FP), CX
	MOVQ n+48(FP), DX
	SHLQ $2, DX
	MOVQ CX, R9
	IMULQ DX, R9
	ADDQ C+16(FP), R9
	EXPCONSTS

adjStep:
	DECQ CX
	SUBQ DX, R9
	MOVQ stride+56(FP), R8
	SHLQ $2, R8
	IMULQ CX, R8
	VBROADCASTSS (R10)(R8*1), Y14
	VBROADCASTSS (R11)(R8*1), Y13
	XORQ AX, AX

adjState:
	VMULPS (SI)(AX*1), Y14, Y0
	EXP8
	VMOVUPS (DI)(AX*1), Y12
	VFMADD231PS (R9)(AX*1), Y13, Y12 // ĝ·C + μ
	VMULPS Y12, Y1, Y12
	VMOVUPS Y12, (DI)(AX*1)
	ADDQ $32, AX
	CMPQ AX, DX
	JLT adjState

	TESTQ CX, CX
	JNZ adjStep
	VZEROUPPER
	RET

// EXPNEGABS sets Y13 = |Y12|, Y1 = e = exp(−|Y12|), Y3 = 1/(1 + e). Needs Y14 = 0 and EXPCONSTS.
#define EXPNEGABS \
	VANDPS ABSMASK, Y12, Y13 \
	VSUBPS Y13, Y14, Y0 \
	EXP8 \
	VADDPS ONE, Y1, Y2 \
	VMOVUPS ONE, Y3 \
	VDIVPS Y2, Y3, Y3

// func softplusAVX2(x, d *float32, n int)
// As softplus32: with e = exp(−|x|) and w = e/(2+e), softplus(x) = max(x, 0) + 2w·P(w²),
// σ(x) = 1/(1+e) for x ≥ 0 and e/(1+e) below; x itself and 1 above the threshold.
TEXT ·softplusAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), DI
	MOVQ d+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y14, Y14, Y14
	EXPCONSTS

spLoop:
	VMOVUPS (DI), Y12
	EXPNEGABS
	VADDPS TWO, Y1, Y4
	VDIVPS Y4, Y1, Y4 // w
	VMULPS Y4, Y4, Y13 // w²
	VMOVUPS L13, Y0
	VFMADD213PS L11, Y13, Y0
	VFMADD213PS L9, Y13, Y0
	VFMADD213PS L7, Y13, Y0
	VFMADD213PS L5, Y13, Y0
	VFMADD213PS L3, Y13, Y0
	VFMADD213PS ONE, Y13, Y0
	VMULPS Y4, Y0, Y0
	VADDPS Y0, Y0, Y0 // log1p(e)
	VMAXPS Y14, Y12, Y2
	VADDPS Y0, Y2, Y2 // softplus
	VMULPS Y3, Y1, Y4 // e/(1+e)
	VCMPPS $0x0d, Y14, Y12, Y13 // x >= 0
	VBLENDVPS Y13, Y3, Y4, Y4 // σ(x)
	VCMPPS $0x0e, THRESHOLD, Y12, Y13 // x > threshold
	VBLENDVPS Y13, Y12, Y2, Y2
	VBLENDVPS Y13, ONE, Y4, Y4
	VMOVUPS Y2, (DI)
	VMOVUPS Y4, (SI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ spLoop
	VZEROUPPER
	RET

// func sigmoidAVX2(x, s *float32, n int)
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y14, Y14, Y14
	EXPCONSTS

sgLoop:
	VMOVUPS (DI), Y12
	EXPNEGABS
	VMULPS Y3, Y1, Y4
	VCMPPS $0x0d, Y14, Y12, Y13
	VBLENDVPS Y13, Y3, Y4, Y4
	VMOVUPS Y4, (SI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ sgLoop
	VZEROUPPER
	RET

// func duDeltaAVX2(gu, gd, sumD, sumBias, u, D, gh, dt, ddt, s1, s2 *float32, n int)
// As duDeltaRowGo, eight channels per instruction, with fused multiply-adds. n (a multiple of
// 8) is kept in bytes in its argument slot.
TEXT ·duDeltaAVX2(SB), NOSPLIT, $0-96
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

ddLoop:
	VMOVUPS (R12)(DX*1), Y0 // ĝ
	VMOVUPS (BX)(DX*1), Y1 // s1
	VMOVUPS (R10)(DX*1), Y2 // u
	VMULPS (R13)(DX*1), Y1, Y3 // Δ·s1
	VFMADD231PS (R11)(DX*1), Y0, Y3 // du = D·ĝ + Δ·s1
	VMOVUPS Y3, (DI)(DX*1)
	VMOVUPS (R8)(DX*1), Y4
	VFMADD231PS Y2, Y0, Y4 // sumD += ĝ·u
	VMOVUPS Y4, (R8)(DX*1)
	VMOVUPS (CX)(DX*1), Y5
	VFMADD231PS Y1, Y2, Y5 // u·s1 + s2
	VMULPS (AX)(DX*1), Y5, Y5 // dδ
	VMOVUPS Y5, (SI)(DX*1)
	VADDPS (R9)(DX*1), Y5, Y6 // sumBias += dδ
	VMOVUPS Y6, (R9)(DX*1)
	ADDQ $32, DX
	CMPQ DX, n+88(FP)
	JLT ddLoop
	VZEROUPPER
	RET
