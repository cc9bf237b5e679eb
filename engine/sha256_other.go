//go:build !amd64 || purego

package engine

import "crypto/sha256"

// sum256Secret returns the SHA-256 of a secret of SecretLen bytes; on
// amd64 it has a one-block routine (sha256_amd64.s).
func sum256Secret(s *[SecretLen]byte) Hash { return sha256.Sum256(s[:]) }
