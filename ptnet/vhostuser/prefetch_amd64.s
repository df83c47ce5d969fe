#include "textflag.h"

// func PrefetchW(p, q *byte)
TEXT ·PrefetchW(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	// PREFETCHW (AX): 0F 0D /1
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08
	MOVQ q+8(FP), AX
	TESTQ AX, AX
	JZ done
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08
done:
	RET
