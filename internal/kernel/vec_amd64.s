//go:build !purego

#include "textflag.h"

// func mulAddAVX2(dst, a, b *float32, n int)
// dst[i] += a[i]·b[i], 32 then 8 lanes at a time, then one by one.
TEXT ·mulAddAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX

loop32:
	CMPQ CX, $32
	JLT  loop8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	VFMADD231PS 64(DX), Y6, Y2
	VFMADD231PS 96(DX), Y7, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, SI
	ADDQ    $128, DX
	SUBQ    $32, CX
	JMP     loop32

loop8:
	CMPQ CX, $8
	JLT  tail
	VMOVUPS (DI), Y0
	VMOVUPS (SI), Y4
	VFMADD231PS (DX), Y4, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	SUBQ    $8, CX
	JMP     loop8

tail:
	TESTQ CX, CX
	JEQ   done
	VMOVSS (DI), X0
	VMOVSS (SI), X4
	VFMADD231SS (DX), X4, X0
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	ADDQ   $4, SI
	ADDQ   $4, DX
	DECQ   CX
	JMP    tail

done:
	VZEROUPPER
	RET

// func dotAVX2(a, b *float32, n int) float32
// Σ a[i]·b[i]: four 8-lane sums over blocks of 32, the first one over blocks
// of 8, then the lanes added pairwise, then the tail one by one.
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DX
	MOVQ   n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dot32:
	CMPQ        CX, $32
	JLT         dot8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	VFMADD231PS 64(DX), Y6, Y2
	VFMADD231PS 96(DX), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DX
	SUBQ        $32, CX
	JMP         dot32

dot8:
	CMPQ        CX, $8
	JLT         reduce
	VMOVUPS     (SI), Y4
	VFMADD231PS (DX), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DX
	SUBQ        $8, CX
	JMP         dot8

reduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVHLPS     X0, X1, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0

dottail:
	TESTQ       CX, CX
	JEQ         dotdone
	VMOVSS      (SI), X4
	VFMADD231SS (DX), X4, X0
	ADDQ        $4, SI
	ADDQ        $4, DX
	DECQ        CX
	JMP         dottail

dotdone:
	VMOVSS     X0, ret+24(FP)
	VZEROUPPER
	RET

// The tiles of DotRows. Every output is one 8-lane sum over k (k a multiple of 8): lane l
// accumulates the products at k ≡ l (mod 8) in increasing k with fused multiply-adds, and the
// lanes are added as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), whatever the tile. With add the
// sum is added to y.

// REDUCE sums the 8 lanes of register y into the low lane of x, its low half; X15 is scratch.
#define REDUCE(y, x) \
	VEXTRACTF128 $1, y, X15; \
	VADDPS       X15, x, x; \
	VMOVHLPS     x, X15, X15; \
	VADDPS       X15, x, x; \
	VMOVSHDUP    x, X15; \
	VADDSS       X15, x, x

// STORE writes (or, when AX ≠ 0, adds to) the low lane of x at address addr.
#define STORE(x, addr) \
	TESTB  AX, AX; \
	JEQ    2(PC); \
	VADDSS addr, x, x; \
	VMOVSS x, addr

// func dotTile4x2(y *float32, ldy int, x *float32, k int, w *float32, ldw int, add bool)
// y[r·ldy + j] (+)= x_r · w_j for rows r < 4 of x (stride k) and j < 2 of w (stride ldw).
TEXT ·dotTile4x2(SB), NOSPLIT, $0-49
	MOVBLZX add+48(FP), AX
	MOVQ   y+0(FP), DI
	MOVQ   ldy+8(FP), BX
	SHLQ   $2, BX
	MOVQ   x+16(FP), SI
	MOVQ   k+24(FP), CX
	SHLQ   $2, CX
	MOVQ   w+32(FP), DX
	MOVQ   ldw+40(FP), R8
	SHLQ   $2, R8
	LEAQ   (DX)(R8*1), R10
	LEAQ   (SI)(CX*1), R11
	LEAQ   (R11)(CX*1), R12
	LEAQ   (R12)(CX*1), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   R9, R9

tile42:
	VMOVUPS     (DX)(R9*1), Y8
	VMOVUPS     (R10)(R9*1), Y9
	VMOVUPS     (SI)(R9*1), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VMOVUPS     (R11)(R9*1), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VMOVUPS     (R12)(R9*1), Y12
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VMOVUPS     (R13)(R9*1), Y13
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ        $32, R9
	CMPQ        R9, CX
	JLT         tile42

	REDUCE(Y0, X0)
	REDUCE(Y1, X1)
	REDUCE(Y2, X2)
	REDUCE(Y3, X3)
	REDUCE(Y4, X4)
	REDUCE(Y5, X5)
	REDUCE(Y6, X6)
	REDUCE(Y7, X7)
	STORE(X0, (DI))
	STORE(X1, 4(DI))
	ADDQ BX, DI
	STORE(X2, (DI))
	STORE(X3, 4(DI))
	ADDQ BX, DI
	STORE(X4, (DI))
	STORE(X5, 4(DI))
	ADDQ BX, DI
	STORE(X6, (DI))
	STORE(X7, 4(DI))
	VZEROUPPER
	RET

// func dotTile1x4(y *float32, ldy int, x *float32, k int, w *float32, ldw int, add bool)
// y[j] (+)= x · w_j for j < 4 of w (stride ldw); ldy is unused.
TEXT ·dotTile1x4(SB), NOSPLIT, $0-49
	MOVBLZX add+48(FP), AX
	MOVQ   y+0(FP), DI
	MOVQ   x+16(FP), SI
	MOVQ   k+24(FP), CX
	SHLQ   $2, CX
	MOVQ   w+32(FP), DX
	MOVQ   ldw+40(FP), R8
	SHLQ   $2, R8
	LEAQ   (DX)(R8*1), R10
	LEAQ   (R10)(R8*1), R11
	LEAQ   (R11)(R8*1), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   R9, R9

tile14:
	VMOVUPS     (SI)(R9*1), Y8
	VFMADD231PS (DX)(R9*1), Y8, Y0
	VFMADD231PS (R10)(R9*1), Y8, Y1
	VFMADD231PS (R11)(R9*1), Y8, Y2
	VFMADD231PS (R12)(R9*1), Y8, Y3
	ADDQ        $32, R9
	CMPQ        R9, CX
	JLT         tile14

	REDUCE(Y0, X0)
	REDUCE(Y1, X1)
	REDUCE(Y2, X2)
	REDUCE(Y3, X3)
	STORE(X0, (DI))
	STORE(X1, 4(DI))
	STORE(X2, 8(DI))
	STORE(X3, 12(DI))
	VZEROUPPER
	RET

// func dotTile1x1(y *float32, ldy int, x *float32, k int, w *float32, ldw int, add bool)
// y[0] (+)= x · w.
TEXT ·dotTile1x1(SB), NOSPLIT, $0-49
	MOVBLZX add+48(FP), AX
	MOVQ   y+0(FP), DI
	MOVQ   x+16(FP), SI
	MOVQ   k+24(FP), CX
	SHLQ   $2, CX
	MOVQ   w+32(FP), DX
	VXORPS Y0, Y0, Y0
	XORQ   R9, R9

tile11:
	VMOVUPS     (SI)(R9*1), Y8
	VFMADD231PS (DX)(R9*1), Y8, Y0
	ADDQ        $32, R9
	CMPQ        R9, CX
	JLT         tile11

	REDUCE(Y0, X0)
	STORE(X0, (DI))
	VZEROUPPER
	RET
