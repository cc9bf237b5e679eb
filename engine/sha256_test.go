package engine

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// sha256Inputs returns messages of every length from 0 to 200 (several
// random ones each) and, at SecretLen, many more: random bytes, every byte
// value at every position of an all-zero and an all-0xff message, and
// fresh secrets.
func sha256Inputs(r *rand.Rand) [][]byte {
	var out [][]byte
	for n := range 201 {
		for range 8 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			out = append(out, b)
		}
	}
	for _, fill := range []byte{0x00, 0xff} {
		for pos := range SecretLen {
			for c := range 256 {
				b := make([]byte, SecretLen)
				for i := range b {
					b[i] = fill
				}
				b[pos] = byte(c)
				out = append(out, b)
			}
		}
	}
	for range 20000 {
		b := make([]byte, SecretLen)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		s, _ := NewSecret()
		out = append(out, b, []byte(s))
	}
	return out
}

// TestHashSecretIsSHA256 checks HashSecret, whichever routine the CPU gets
// (sha256_amd64.s or crypto/sha256), against crypto/sha256.
func TestHashSecretIsSHA256(t *testing.T) {
	for _, b := range sha256Inputs(rand.New(rand.NewPCG(41, 1))) {
		if got, want := HashSecret(b), Hash(sha256.Sum256(b)); got != want {
			t.Fatalf("HashSecret(%x) = %x, want %x", b, got, want)
		}
	}
}

func FuzzHashSecret(f *testing.F) {
	s, _ := NewSecret()
	f.Add([]byte(s))
	f.Add(make([]byte, SecretLen))
	f.Add([]byte("kg_"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := HashSecret(b), Hash(sha256.Sum256(b)); got != want {
			t.Fatalf("HashSecret(%x) = %x, want %x", b, got, want)
		}
	})
}
