//go:build amd64 && !purego

#include "textflag.h"

// The product kernels of mulAddAVX2: C[r][j] (+)= Σ_x A[r][x]·B[x][j] for a block of R rows and
// W columns, x from 0 to k−1 in order, one fused multiply-add per term. Arguments are in
// elements; A's element (r, x) is at a + r·ars + x·aks, B's row x at b + x·ldb, C's row r at
// c + r·ldc. k ≥ 1.

// func kern4x16(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)
TEXT ·kern4x16(SB), NOSPLIT, $0-65
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldc+24(FP), R8
	SHLQ $2, R8
	MOVQ ars+32(FP), R9
	SHLQ $2, R9
	MOVQ aks+40(FP), R10
	SHLQ $2, R10
	MOVQ ldb+48(FP), R11
	SHLQ $2, R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(R9*1), R12
	LEAQ (R12)(R9*1), R13
	LEAQ (R13)(R9*1), R14
	MOVBLZX acc+64(FP), AX
	TESTQ AX, AX
	JZ zero
	MOVQ DI, AX
	VMOVUPS 0(AX), Y0
	VMOVUPS 32(AX), Y1
	ADDQ R8, AX
	VMOVUPS 0(AX), Y2
	VMOVUPS 32(AX), Y3
	ADDQ R8, AX
	VMOVUPS 0(AX), Y4
	VMOVUPS 32(AX), Y5
	ADDQ R8, AX
	VMOVUPS 0(AX), Y6
	VMOVUPS 32(AX), Y7
	JMP loop
zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
loop:
	VMOVUPS 0(DX), Y8
	VMOVUPS 32(DX), Y9
	VBROADCASTSS (SI), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VBROADCASTSS (R12), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VBROADCASTSS (R13), Y10
	VFMADD231PS Y8, Y10, Y4
	VFMADD231PS Y9, Y10, Y5
	VBROADCASTSS (R14), Y11
	VFMADD231PS Y8, Y11, Y6
	VFMADD231PS Y9, Y11, Y7
	ADDQ R10, SI
	ADDQ R10, R12
	ADDQ R10, R13
	ADDQ R10, R14
	ADDQ R11, DX
	DECQ CX
	JNZ loop
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	ADDQ R8, DI
	VMOVUPS Y2, 0(DI)
	VMOVUPS Y3, 32(DI)
	ADDQ R8, DI
	VMOVUPS Y4, 0(DI)
	VMOVUPS Y5, 32(DI)
	ADDQ R8, DI
	VMOVUPS Y6, 0(DI)
	VMOVUPS Y7, 32(DI)
	VZEROUPPER
	RET

// func kern4x8(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)
TEXT ·kern4x8(SB), NOSPLIT, $0-65
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldc+24(FP), R8
	SHLQ $2, R8
	MOVQ ars+32(FP), R9
	SHLQ $2, R9
	MOVQ aks+40(FP), R10
	SHLQ $2, R10
	MOVQ ldb+48(FP), R11
	SHLQ $2, R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(R9*1), R12
	LEAQ (R12)(R9*1), R13
	LEAQ (R13)(R9*1), R14
	MOVBLZX acc+64(FP), AX
	TESTQ AX, AX
	JZ zero
	MOVQ DI, AX
	VMOVUPS 0(AX), Y0
	ADDQ R8, AX
	VMOVUPS 0(AX), Y1
	ADDQ R8, AX
	VMOVUPS 0(AX), Y2
	ADDQ R8, AX
	VMOVUPS 0(AX), Y3
	JMP loop
zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
loop:
	VMOVUPS 0(DX), Y8
	VBROADCASTSS (SI), Y10
	VFMADD231PS Y8, Y10, Y0
	VBROADCASTSS (R12), Y11
	VFMADD231PS Y8, Y11, Y1
	VBROADCASTSS (R13), Y10
	VFMADD231PS Y8, Y10, Y2
	VBROADCASTSS (R14), Y11
	VFMADD231PS Y8, Y11, Y3
	ADDQ R10, SI
	ADDQ R10, R12
	ADDQ R10, R13
	ADDQ R10, R14
	ADDQ R11, DX
	DECQ CX
	JNZ loop
	VMOVUPS Y0, 0(DI)
	ADDQ R8, DI
	VMOVUPS Y1, 0(DI)
	ADDQ R8, DI
	VMOVUPS Y2, 0(DI)
	ADDQ R8, DI
	VMOVUPS Y3, 0(DI)
	VZEROUPPER
	RET

// func kern1x16(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)
TEXT ·kern1x16(SB), NOSPLIT, $0-65
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldc+24(FP), R8
	SHLQ $2, R8
	MOVQ ars+32(FP), R9
	SHLQ $2, R9
	MOVQ aks+40(FP), R10
	SHLQ $2, R10
	MOVQ ldb+48(FP), R11
	SHLQ $2, R11
	MOVQ k+56(FP), CX
	MOVBLZX acc+64(FP), AX
	TESTQ AX, AX
	JZ zero
	MOVQ DI, AX
	VMOVUPS 0(AX), Y0
	VMOVUPS 32(AX), Y1
	JMP loop
zero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
loop:
	VMOVUPS 0(DX), Y8
	VMOVUPS 32(DX), Y9
	VBROADCASTSS (SI), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	ADDQ R10, SI
	ADDQ R11, DX
	DECQ CX
	JNZ loop
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VZEROUPPER
	RET

// func kern1x8(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)
TEXT ·kern1x8(SB), NOSPLIT, $0-65
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldc+24(FP), R8
	SHLQ $2, R8
	MOVQ ars+32(FP), R9
	SHLQ $2, R9
	MOVQ aks+40(FP), R10
	SHLQ $2, R10
	MOVQ ldb+48(FP), R11
	SHLQ $2, R11
	MOVQ k+56(FP), CX
	MOVBLZX acc+64(FP), AX
	TESTQ AX, AX
	JZ zero
	MOVQ DI, AX
	VMOVUPS 0(AX), Y0
	JMP loop
zero:
	VXORPS Y0, Y0, Y0
loop:
	VMOVUPS 0(DX), Y8
	VBROADCASTSS (SI), Y10
	VFMADD231PS Y8, Y10, Y0
	ADDQ R10, SI
	ADDQ R11, DX
	DECQ CX
	JNZ loop
	VMOVUPS Y0, 0(DI)
	VZEROUPPER
	RET

// The same with 32 columns in two AVX-512 registers per row.

// func kern4x32(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)
TEXT ·kern4x32(SB), NOSPLIT, $0-65
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldc+24(FP), R8
	SHLQ $2, R8
	MOVQ ars+32(FP), R9
	SHLQ $2, R9
	MOVQ aks+40(FP), R10
	SHLQ $2, R10
	MOVQ ldb+48(FP), R11
	SHLQ $2, R11
	MOVQ k+56(FP), CX
	LEAQ (SI)(R9*1), R12
	LEAQ (R12)(R9*1), R13
	LEAQ (R13)(R9*1), R14
	MOVBLZX acc+64(FP), AX
	TESTQ AX, AX
	JZ zero
	MOVQ DI, AX
	VMOVUPS 0(AX), Z0
	VMOVUPS 64(AX), Z1
	ADDQ R8, AX
	VMOVUPS 0(AX), Z2
	VMOVUPS 64(AX), Z3
	ADDQ R8, AX
	VMOVUPS 0(AX), Z4
	VMOVUPS 64(AX), Z5
	ADDQ R8, AX
	VMOVUPS 0(AX), Z6
	VMOVUPS 64(AX), Z7
	JMP loop
zero:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
loop:
	VMOVUPS 0(DX), Z8
	VMOVUPS 64(DX), Z9
	VBROADCASTSS (SI), Z10
	VFMADD231PS Z8, Z10, Z0
	VFMADD231PS Z9, Z10, Z1
	VBROADCASTSS (R12), Z11
	VFMADD231PS Z8, Z11, Z2
	VFMADD231PS Z9, Z11, Z3
	VBROADCASTSS (R13), Z10
	VFMADD231PS Z8, Z10, Z4
	VFMADD231PS Z9, Z10, Z5
	VBROADCASTSS (R14), Z11
	VFMADD231PS Z8, Z11, Z6
	VFMADD231PS Z9, Z11, Z7
	ADDQ R10, SI
	ADDQ R10, R12
	ADDQ R10, R13
	ADDQ R10, R14
	ADDQ R11, DX
	DECQ CX
	JNZ loop
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	ADDQ R8, DI
	VMOVUPS Z2, 0(DI)
	VMOVUPS Z3, 64(DI)
	ADDQ R8, DI
	VMOVUPS Z4, 0(DI)
	VMOVUPS Z5, 64(DI)
	ADDQ R8, DI
	VMOVUPS Z6, 0(DI)
	VMOVUPS Z7, 64(DI)
	VZEROUPPER
	RET

// func kern1x32(c, a, b *float32, ldc, ars, aks, ldb, k int, acc bool)
TEXT ·kern1x32(SB), NOSPLIT, $0-65
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ ldc+24(FP), R8
	SHLQ $2, R8
	MOVQ ars+32(FP), R9
	SHLQ $2, R9
	MOVQ aks+40(FP), R10
	SHLQ $2, R10
	MOVQ ldb+48(FP), R11
	SHLQ $2, R11
	MOVQ k+56(FP), CX
	MOVBLZX acc+64(FP), AX
	TESTQ AX, AX
	JZ zero
	MOVQ DI, AX
	VMOVUPS 0(AX), Z0
	VMOVUPS 64(AX), Z1
	JMP loop
zero:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
loop:
	VMOVUPS 0(DX), Z8
	VMOVUPS 64(DX), Z9
	VBROADCASTSS (SI), Z10
	VFMADD231PS Z8, Z10, Z0
	VFMADD231PS Z9, Z10, Z1
	ADDQ R10, SI
	ADDQ R11, DX
	DECQ CX
	JNZ loop
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VZEROUPPER
	RET

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
