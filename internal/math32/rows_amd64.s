//go:build !purego

#include "textflag.h"
#include "go_asm.h"

// The vector functions, written once as macros over register arguments and instantiated for
// 8 lanes (Y registers, AVX2) and 16 lanes (Z registers, AVX-512; masks in K registers). Every
// lane computes the same operations in both, so both widths give identical bits.

// Rows of ·vecConsts (64 bytes each; the 8-lane code reads the first 32).
#define LOG2E ·vecConsts+0(SB)
#define MAGIC ·vecConsts+64(SB)
#define NLN2HI ·vecConsts+128(SB)
#define NLN2LO ·vecConsts+192(SB)
#define C6 ·vecConsts+256(SB)
#define C5 ·vecConsts+320(SB)
#define C4 ·vecConsts+384(SB)
#define C3 ·vecConsts+448(SB)
#define C2 ·vecConsts+512(SB)
#define C1 ·vecConsts+576(SB)
#define ONE ·vecConsts+640(SB)
#define EXPLO ·vecConsts+704(SB)
#define EXPHI ·vecConsts+768(SB)
#define BIAS ·vecConsts+832(SB)
#define TWO ·vecConsts+896(SB)
#define L3 ·vecConsts+960(SB)
#define L5 ·vecConsts+1024(SB)
#define L7 ·vecConsts+1088(SB)
#define L9 ·vecConsts+1152(SB)
#define L11 ·vecConsts+1216(SB)
#define L13 ·vecConsts+1280(SB)
#define THRESHOLD ·vecConsts+1344(SB)
#define ABSMASK ·vecConsts+1408(SB)

// What differs between the widths: a comparison's mask is a vector register (8 lanes) or a
// K register (16). KEEP zeroes v where m is clear; SEL sets d = m ? a : b.
#define KEEP8(m, v) VANDPS m, v, v
#define KEEP16(m, v) VMOVAPS.Z v, m, v
#define SEL8(m, a, b, d) VBLENDVPS m, a, b, d
#define SEL16(m, a, b, d) VBLENDMPS a, b, m, d

// EXPCONSTS loads the constants EXP keeps in registers.
#define EXPCONSTS(KM, KL, KH, KO, K5, K4, K3, K2) \
	VMOVUPS MAGIC, KM \
	VMOVUPS LOG2E, KL \
	VMOVUPS NLN2HI, KH \
	VMOVUPS NLN2LO, KO \
	VMOVUPS C5, K5 \
	VMOVUPS C4, K4 \
	VMOVUPS C3, K3 \
	VMOVUPS C2, K2

// EXP sets OUT = e^X lane by lane and clobbers X, T0, T1 and the mask M: M = !(x < expLo)
// zeroes what would be subnormal and keeps NaN; x is clamped at expHi (VMINPS returns its
// first operand, x, for NaN, so NaN stays NaN); t = x·log2e + magic rounds k = x/ln2 into the
// low bits; r = x − k·ln2Hi − k·ln2Lo; e^r by Horner's scheme; 2^k = (bits(t) − (magicBits −
// 127)) << 23.
#define EXP(KEEP, X, OUT, T0, T1, M, KM, KL, KH, KO, K5, K4, K3, K2) \
	VCMPPS $0x05, EXPLO, X, M \
	VMOVUPS EXPHI, OUT \
	VMINPS X, OUT, X \
	VMOVAPS KM, T0 \
	VFMADD231PS KL, X, T0 \
	VSUBPS KM, T0, T1 \
	VFMADD231PS KH, T1, X \
	VFMADD231PS KO, T1, X \
	VMOVUPS C6, OUT \
	VFMADD213PS K5, X, OUT \
	VFMADD213PS K4, X, OUT \
	VFMADD213PS K3, X, OUT \
	VFMADD213PS K2, X, OUT \
	VFMADD213PS C1, X, OUT \
	VFMADD213PS ONE, X, OUT \
	VPSUBD BIAS, T0, T0 \
	VPSLLD $23, T0, T0 \
	VMULPS T0, OUT, OUT \
	KEEP(M, OUT)

// The register plan: EXP clobbers V2, V3 and V4 (K1), its constants live in V5-V11 and V15;
// the functions keep their own values in V0, V1 and V12-V14.
#define EXP8(X, OUT) EXP(KEEP8, X, OUT, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y15)
#define EXP16(X, OUT) EXP(KEEP16, X, OUT, Z2, Z3, K1, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z15)
#define CONSTS8 EXPCONSTS(Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y15)
#define CONSTS16 EXPCONSTS(Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z15)

// SIGMA sets V4 = σ(x) for x in V12: V1 = e = e^{−|x|}, V3 = 1/(1 + e), σ = V3 for x ≥ 0 and
// e·V3 below. Needs V14 = 0; clobbers V0-V4 and the mask M.
#define SIGMA(EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
	VANDPS ABSMASK, V12, V0 \
	VSUBPS V0, V14, V0 \
	EXPW(V0, V1) \
	VADDPS ONE, V1, V2 \
	VMOVUPS ONE, V3 \
	VDIVPS V2, V3, V3 \
	VMULPS V3, V1, V4 \
	VCMPPS $0x0d, V14, V12, M \
	SELW(M, V3, V4, V4)

// The element-wise loops: AX runs over the bytes CX of the rows y (DI), d (SI) and x (DX), W
// bytes a vector.

// SOFTPLUS: y = max(x, 0) + ln(1 + e) with ln(1 + e) = 2w·P(w²), w = e/(2 + e), and d = σ(x);
// x itself and 1 above the threshold.
#define SOFTPLUS(loop, W, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V13, V14) \
loop: \
	VMOVUPS (DX)(AX*1), V12 \
	SIGMA(EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
	VADDPS TWO, V1, V2 \
	VDIVPS V2, V1, V2 /* w */ \
	VMULPS V2, V2, V13 /* w² */ \
	VMOVUPS L13, V0 \
	VFMADD213PS L11, V13, V0 \
	VFMADD213PS L9, V13, V0 \
	VFMADD213PS L7, V13, V0 \
	VFMADD213PS L5, V13, V0 \
	VFMADD213PS L3, V13, V0 \
	VFMADD213PS ONE, V13, V0 \
	VMULPS V2, V0, V0 \
	VADDPS V0, V0, V0 /* ln(1 + e) */ \
	VMAXPS V14, V12, V2 \
	VADDPS V0, V2, V2 \
	VCMPPS $0x0e, THRESHOLD, V12, M \
	SELW(M, V12, V2, V2) \
	SELW(M, ONE, V4, V4) \
	VMOVUPS V2, (DI)(AX*1) \
	VMOVUPS V4, (SI)(AX*1) \
	ADDQ W, AX \
	CMPQ AX, CX \
	JLT loop

// SIGMOID: y = σ(x).
#define SIGMOID(loop, W, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
loop: \
	VMOVUPS (DX)(AX*1), V12 \
	SIGMA(EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
	VMOVUPS V4, (DI)(AX*1) \
	ADDQ W, AX \
	CMPQ AX, CX \
	JLT loop

// SILU: y = x·σ(x), and with GRAD d = σ·(1 + x·σ(−x)), σ(−x) = 1 − σ(x) being the other
// choice of SIGMA's select (NOGRAD leaves d alone).
#define GRAD(SELW, M, V0, V1, V3, V4, V12) \
	VMULPS V3, V1, V0 \
	SELW(M, V0, V3, V0) \
	VMULPS V12, V0, V0 \
	VADDPS ONE, V0, V0 \
	VMULPS V4, V0, V0 \
	VMOVUPS V0, (SI)(AX*1)
#define NOGRAD(SELW, M, V0, V1, V3, V4, V12)
#define SILU(loop, D, W, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
loop: \
	VMOVUPS (DX)(AX*1), V12 \
	SIGMA(EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
	VMULPS V4, V12, V2 \
	VMOVUPS V2, (DI)(AX*1) \
	D(SELW, M, V0, V1, V3, V4, V12) \
	ADDQ W, AX \
	CMPQ AX, CX \
	JLT loop

// EXPAFFINE: y = e^(a·x + b) with a and b broadcast from X13 and X12.
#define EXPAFFINE(loop, W, EXPW, V0, V1, V12, V13) \
	VBROADCASTSS X13, V13 \
	VBROADCASTSS X12, V12 \
loop: \
	VMULPS (DX)(AX*1), V13, V0 \
	VADDPS V12, V0, V0 \
	EXPW(V0, V1) \
	VMOVUPS V1, (DI)(AX*1) \
	ADDQ W, AX \
	CMPQ AX, CX \
	JLT loop

// EXPSCALED: rows of y = e^(x_r·a) (see ExpScaledRows). BX counts the rows; per row x_r is
// broadcast from (R8) and AX runs over the row's bytes CX of y (DI) and a (SI).
#define EXPSCALED(row, col, W, EXPW, V0, V1, V14) \
row: \
	VBROADCASTSS (R8), V14 \
	XORQ AX, AX \
col: \
	VMULPS (SI)(AX*1), V14, V0 \
	EXPW(V0, V1) \
	VMOVUPS V1, (DI)(AX*1) \
	ADDQ W, AX \
	CMPQ AX, CX \
	JLT col \
	ADDQ CX, DI \
	ADDQ R9, SI \
	ADDQ R10, R8 \
	DECQ BX \
	JNZ row

// ROWS runs op BX at one width: labels sp, sg, si, sd start the bodies of softplus, sigmoid,
// SiLU and SiLU with its derivative (ExpAffine falls through), l1-l5 are their loops.
#define ROWS(sp, sg, si, sd, l1, l2, l3, l4, l5, W, CONSTSW, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V13, V14) \
	CONSTSW \
	VXORPS V14, V14, V14 \
	CMPQ BX, $const_opSoftplus \
	JEQ sp \
	CMPQ BX, $const_opSigmoid \
	JEQ sg \
	CMPQ BX, $const_opSiLU \
	JEQ si \
	CMPQ BX, $const_opSiLUGrad \
	JEQ sd \
	EXPAFFINE(l5, W, EXPW, V0, V1, V12, V13) \
	VZEROUPPER \
	RET \
sp: \
	SOFTPLUS(l1, W, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V13, V14) \
	VZEROUPPER \
	RET \
sg: \
	SIGMOID(l2, W, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
	VZEROUPPER \
	RET \
si: \
	SILU(l3, NOGRAD, W, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
	VZEROUPPER \
	RET \
sd: \
	SILU(l4, GRAD, W, EXPW, SELW, M, V0, V1, V2, V3, V4, V12, V14) \
	VZEROUPPER \
	RET

// func rowsVec(op int, y, d, x *float32, n int, a, b float32, wide bool)
TEXT ·rowsVec(SB), NOSPLIT, $0-49
	MOVQ y+8(FP), DI
	MOVQ d+16(FP), SI
	MOVQ x+24(FP), DX
	MOVQ n+32(FP), CX
	SHLQ $2, CX
	XORQ AX, AX
	VMOVSS a+40(FP), X13
	VMOVSS b+44(FP), X12
	MOVQ op+0(FP), BX
	CMPB wide+48(FP), $0
	JNE wide
	ROWS(sp8, sg8, si8, sd8, l1, l2, l3, l4, l5, $32, CONSTS8, EXP8, SEL8, Y13, Y0, Y1, Y2, Y3, Y4, Y12, Y13, Y14)

wide:
	ROWS(sp16, sg16, si16, sd16, m1, m2, m3, m4, m5, $64, CONSTS16, EXP16, SEL16, K2, Z0, Z1, Z2, Z3, Z4, Z12, Z13, Z14)

// func expScaledVec(dst *float32, n, rows int, x *float32, xStride int, a *float32, aStride int, wide bool)
TEXT ·expScaledVec(SB), NOSPLIT, $0-57
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), CX
	SHLQ $2, CX
	MOVQ rows+16(FP), BX
	MOVQ x+24(FP), R8
	MOVQ xStride+32(FP), R10
	SHLQ $2, R10
	MOVQ a+40(FP), SI
	MOVQ aStride+48(FP), R9
	SHLQ $2, R9
	CMPB wide+56(FP), $0
	JNE wide
	CONSTS8
	EXPSCALED(row8, col8, $32, EXP8, Y0, Y1, Y14)
	VZEROUPPER
	RET

wide:
	CONSTS16
	EXPSCALED(row16, col16, $64, EXP16, Z0, Z1, Z14)
	VZEROUPPER
	RET

// func cpuid(leaf uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	XORL CX, CX
	CPUID
	MOVL AX, a+8(FP)
	MOVL BX, b+12(FP)
	MOVL CX, c+16(FP)
	MOVL DX, d+20(FP)
	RET
