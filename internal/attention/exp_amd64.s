//go:build amd64 && !purego

#include "textflag.h"

// The row loops of dotsAVX2Rows, expAffineAVX2Row and expBiasAVX2Row (see tile_amd64.go).

// func dotsAVX2(s, q, k *float32, ldk, n, d int)
// s[j] = Σ_i q[i]·k[j·ldk + i] for j < n, i < d (a multiple of 8): eight partial sums in the lanes
// of one register, folded at the end.
TEXT ·dotsAVX2(SB), NOSPLIT, $0-48
	MOVQ s+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ ldk+24(FP), R8
	SHLQ $2, R8
	MOVQ n+32(FP), CX
	MOVQ d+40(FP), R9

key:
	VXORPS Y0, Y0, Y0
	XORQ AX, AX
	MOVQ R9, BX

dim:
	VMOVUPS (SI)(AX*1), Y1
	VFMADD231PS (DX)(AX*1), Y1, Y0
	ADDQ $32, AX
	SUBQ $8, BX
	JNZ dim
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ R8, DX
	DECQ CX
	JNZ key
	VZEROUPPER
	RET
// Rows of ·expConsts (32 bytes each).
#define LOG2E ·expConsts+0(SB)
#define MAGIC ·expConsts+32(SB)
#define NLN2HI ·expConsts+64(SB)
#define NLN2LO ·expConsts+96(SB)
#define C6 ·expConsts+128(SB)
#define C5 ·expConsts+160(SB)
#define C4 ·expConsts+192(SB)
#define C3 ·expConsts+224(SB)
#define C2 ·expConsts+256(SB)
#define C1 ·expConsts+288(SB)
#define ONE ·expConsts+320(SB)
#define EXPLO ·expConsts+352(SB)
#define EXPHI ·expConsts+384(SB)
#define BIAS ·expConsts+416(SB)

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

// EXP8 sets Y1 = exp(Y0) in eight lanes (the scheme of the scan package's vector exp):
// Y4 = !(x < expLo) masks what would be subnormal to 0 and keeps NaN; x is clamped at expHi;
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

// func expAffineAVX2(dst, src *float32, n int, a, b float32)
// dst[i] = exp(a·src[i] + b) for i < n, a multiple of 8; dst may be src.
TEXT ·expAffineAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y12
	VBROADCASTSS b+28(FP), Y13
	EXPCONSTS

exp:
	VMOVUPS (SI), Y0
	VFMADD213PS Y13, Y12, Y0
	EXP8
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ exp
	VZEROUPPER
	RET

// func expBiasAVX2(dst, src, bias *float32, n int, a float32)
// dst[i] = exp(a·src[i] + bias[i]) for i < n, a multiple of 8; dst may be src.
TEXT ·expBiasAVX2(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ bias+16(FP), BX
	MOVQ n+24(FP), CX
	VBROADCASTSS a+32(FP), Y12
	EXPCONSTS

expb:
	VMOVUPS (SI), Y0
	VFMADD213PS (BX), Y12, Y0
	EXP8
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, BX
	SUBQ $8, CX
	JNZ expb
	VZEROUPPER
	RET
