//go:build amd64 && !purego

package engine

import "crypto/sha256"

// sha256Secret writes the SHA-256 of the SecretLen bytes at s to out. It
// requires useSHANI (sha256_amd64.s says why it exists).
//
//go:noescape
func sha256Secret(out *Hash, s *byte)

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// useSHANI reports whether the CPU has what sha256Secret uses: SSSE3 and
// SSE4.1 (CPUID leaf 1, ECX bits 9 and 19) and the SHA extensions (leaf 7,
// EBX bit 29). A variable so that the tests can take the fallback.
var useSHANI = hasSHANI()

func hasSHANI() bool {
	if max, _, _, _ := cpuid(0, 0); max < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	_, ebx7, _, _ := cpuid(7, 0)
	return ecx1&(1<<9) != 0 && ecx1&(1<<19) != 0 && ebx7&(1<<29) != 0
}

// sum256Secret returns the SHA-256 of a secret of SecretLen bytes, with
// sha256Secret where the CPU allows.
func sum256Secret(s *[SecretLen]byte) Hash {
	if !useSHANI {
		return sha256.Sum256(s[:])
	}
	var h Hash
	sha256Secret(&h, &s[0])
	return h
}
