//go:build amd64 && !purego

#include "textflag.h"

// The row loop of dotsAVX2Rows (see tile_amd64.go).

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
