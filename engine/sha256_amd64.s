//go:build amd64 && !purego

#include "textflag.h"

// sha256Secret hashes exactly one keygate secret (SecretLen = 41 bytes),
// which with its padding is one SHA-256 block, and builds that block in
// registers: no digest state, no buffer, no copy-out. sha256.Sum256 writes
// the message and its padding into the digest's buffer and reads it back
// in 16-byte loads. Measured on the development VM (CPU time, 41-byte
// messages, one hash after another): Sum256 96 ns, this routine fed a
// block that Go code built in memory 100 ns, this routine as it is 58 ns;
// in BenchmarkCheckParts, where consecutive hashes overlap, 37.5 ns
// against Sum256's 97.9 (BENCHMARKS.md). Only SSE encodings are used
// (SSSE3, SSE4.1, SHA), so no AVX state is involved; useSHANI checks for
// them.
//
// The round sequence is the one of Intel's reference for the SHA
// extensions (S. Gulley et al., "New Instructions Supporting the Secure
// Hash Algorithm on Intel Architecture Processors", 2013), which Go's
// crypto/internal/fips140/sha256 SHA-NI block also follows.
//
// Registers: X0 message words plus constants, X1 state ABEF, X2 state
// CDGH, X3-X6 the message schedule, X7 scratch, X8 the byte-swap mask,
// X9 scratch; SI the secret, DI the output, AX the constants, BX scratch.

// The 64 round constants K.
DATA sha256K<>+0(SB)/8, $0x71374491428a2f98
DATA sha256K<>+8(SB)/8, $0xe9b5dba5b5c0fbcf
DATA sha256K<>+16(SB)/8, $0x59f111f13956c25b
DATA sha256K<>+24(SB)/8, $0xab1c5ed5923f82a4
DATA sha256K<>+32(SB)/8, $0x12835b01d807aa98
DATA sha256K<>+40(SB)/8, $0x550c7dc3243185be
DATA sha256K<>+48(SB)/8, $0x80deb1fe72be5d74
DATA sha256K<>+56(SB)/8, $0xc19bf1749bdc06a7
DATA sha256K<>+64(SB)/8, $0xefbe4786e49b69c1
DATA sha256K<>+72(SB)/8, $0x240ca1cc0fc19dc6
DATA sha256K<>+80(SB)/8, $0x4a7484aa2de92c6f
DATA sha256K<>+88(SB)/8, $0x76f988da5cb0a9dc
DATA sha256K<>+96(SB)/8, $0xa831c66d983e5152
DATA sha256K<>+104(SB)/8, $0xbf597fc7b00327c8
DATA sha256K<>+112(SB)/8, $0xd5a79147c6e00bf3
DATA sha256K<>+120(SB)/8, $0x1429296706ca6351
DATA sha256K<>+128(SB)/8, $0x2e1b213827b70a85
DATA sha256K<>+136(SB)/8, $0x53380d134d2c6dfc
DATA sha256K<>+144(SB)/8, $0x766a0abb650a7354
DATA sha256K<>+152(SB)/8, $0x92722c8581c2c92e
DATA sha256K<>+160(SB)/8, $0xa81a664ba2bfe8a1
DATA sha256K<>+168(SB)/8, $0xc76c51a3c24b8b70
DATA sha256K<>+176(SB)/8, $0xd6990624d192e819
DATA sha256K<>+184(SB)/8, $0x106aa070f40e3585
DATA sha256K<>+192(SB)/8, $0x1e376c0819a4c116
DATA sha256K<>+200(SB)/8, $0x34b0bcb52748774c
DATA sha256K<>+208(SB)/8, $0x4ed8aa4a391c0cb3
DATA sha256K<>+216(SB)/8, $0x682e6ff35b9cca4f
DATA sha256K<>+224(SB)/8, $0x78a5636f748f82ee
DATA sha256K<>+232(SB)/8, $0x8cc7020884c87814
DATA sha256K<>+240(SB)/8, $0xa4506ceb90befffa
DATA sha256K<>+248(SB)/8, $0xc67178f2bef9a3f7
GLOBL sha256K<>(SB), RODATA|NOPTR, $256
// (PADDD reads it with SSE memory operands, which need 16-byte alignment:
// the linker aligns a symbol of this size to 32.)

// Byte swap within each 32-bit word: SHA-256 reads big-endian words.
DATA sha256Flip<>+0(SB)/8, $0x0405060700010203
DATA sha256Flip<>+8(SB)/8, $0x0c0d0e0f08090a0b
GLOBL sha256Flip<>(SB), RODATA|NOPTR, $16

// The initial hash value H0..H7 in the order SHA256RNDS2 takes it:
// ABEF (A in the top word) and CDGH.
DATA sha256ABEF<>+0(SB)/8, $0x510e527f9b05688c
DATA sha256ABEF<>+8(SB)/8, $0x6a09e667bb67ae85
GLOBL sha256ABEF<>(SB), RODATA|NOPTR, $16
DATA sha256CDGH<>+0(SB)/8, $0x1f83d9ab5be0cd19
DATA sha256CDGH<>+8(SB)/8, $0x3c6ef372a54ff53a
GLOBL sha256CDGH<>(SB), RODATA|NOPTR, $16

// Message words 12..15 of every secret's block: 0, 0, and the 64-bit
// length in bits, 41*8 = 0x148.
DATA sha256W12<>+0(SB)/8, $0
DATA sha256W12<>+8(SB)/8, $0x0000014800000000
GLOBL sha256W12<>(SB), RODATA|NOPTR, $16

// ROUNDS4 does four rounds with message words X0 and the constants at
// k(AX).
#define ROUNDS4(k) \
	PADDD       k(AX), X0; \
	SHA256RNDS2 X0, X1, X2; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1

// FIRST keeps message words X0 in m for the schedule and does their four
// rounds (rounds 0-11).
#define FIRST(m, k) \
	MOVO X0, m; \
	ROUNDS4(k)

// SCHED does the four rounds of message words m while it completes the
// next words t of the schedule from a, m and t (rounds 12-59).
#define SCHED(m, k, a, t) \
	MOVO        m, X0; \
	PADDD       k(AX), X0; \
	SHA256RNDS2 X0, X1, X2; \
	MOVO        m, X7; \
	PALIGNR     $0x04, a, X7; \
	PADDD       X7, t; \
	SHA256MSG2  m, t; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1

// func sha256Secret(out *Hash, s *byte)
TEXT ·sha256Secret(SB), NOSPLIT, $0-16
	MOVQ  out+0(FP), DI
	MOVQ  s+8(FP), SI
	MOVOU sha256Flip<>(SB), X8
	MOVOU sha256ABEF<>(SB), X1
	MOVOU sha256CDGH<>(SB), X2
	LEAQ  sha256K<>(SB), AX

	// Bytes 0..31: the secret's first 32 bytes.
	MOVOU  0(SI), X0
	PSHUFB X8, X0
	FIRST(X3, 0)
	MOVOU  16(SI), X0
	PSHUFB X8, X0
	FIRST(X4, 16)
	SHA256MSG1 X4, X3

	// Bytes 32..47: the secret's last 9 bytes, the 0x80 that ends the
	// message, zeros.
	MOVQ       32(SI), X0
	MOVBQZX    40(SI), BX
	ORQ        $0x8000, BX
	MOVQ       BX, X7
	PUNPCKLQDQ X7, X0
	PSHUFB     X8, X0
	FIRST(X5, 32)
	SHA256MSG1 X5, X4

	// Bytes 48..63: zeros and the length in bits, already as words.
	MOVOU sha256W12<>(SB), X0
	MOVO  X0, X6
	SCHED(X6, 48, X5, X3)
	SHA256MSG1 X6, X5
	SCHED(X3, 64, X6, X4)
	SHA256MSG1 X3, X6
	SCHED(X4, 80, X3, X5)
	SHA256MSG1 X4, X3
	SCHED(X5, 96, X4, X6)
	SHA256MSG1 X5, X4
	SCHED(X6, 112, X5, X3)
	SHA256MSG1 X6, X5
	SCHED(X3, 128, X6, X4)
	SHA256MSG1 X3, X6
	SCHED(X4, 144, X3, X5)
	SHA256MSG1 X4, X3
	SCHED(X5, 160, X4, X6)
	SHA256MSG1 X5, X4
	SCHED(X6, 176, X5, X3)
	SHA256MSG1 X6, X5
	SCHED(X3, 192, X6, X4)
	SHA256MSG1 X3, X6
	SCHED(X4, 208, X3, X5)
	SCHED(X5, 224, X4, X6)
	MOVO X6, X0
	ROUNDS4(240)

	// Add the initial value, put the words back in the order H0..H7,
	// big-endian, and store.
	MOVOU   sha256ABEF<>(SB), X9
	PADDD   X9, X1
	MOVOU   sha256CDGH<>(SB), X9
	PADDD   X9, X2
	PSHUFD  $0x1b, X1, X1
	PSHUFD  $0xb1, X2, X2
	MOVO    X1, X7
	PBLENDW $0xf0, X2, X1
	PALIGNR $0x08, X7, X2
	PSHUFB  X8, X1
	PSHUFB  X8, X2
	MOVOU   X1, (DI)
	MOVOU   X2, 16(DI)
	RET

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL  leaf+0(FP), AX
	MOVL  sub+4(FP), CX
	CPUID
	MOVL  AX, eax+8(FP)
	MOVL  BX, ebx+12(FP)
	MOVL  CX, ecx+16(FP)
	MOVL  DX, edx+20(FP)
	RET
