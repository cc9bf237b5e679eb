//go:build amd64 && !purego

package engine

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestSHA256SecretRoutine checks the assembly routine itself against
// crypto/sha256, and that the fallback taken without the SHA extensions
// gives the same hashes.
func TestSHA256SecretRoutine(t *testing.T) {
	inputs := sha256Inputs(rand.New(rand.NewPCG(41, 2)))
	if useSHANI {
		n := 0
		for _, b := range inputs {
			if len(b) != SecretLen {
				continue
			}
			var got Hash
			sha256Secret(&got, &b[0])
			if want := Hash(sha256.Sum256(b)); got != want {
				t.Fatalf("sha256Secret(%x) = %x, want %x", b, got, want)
			}
			n++
		}
		t.Logf("SHA extensions: %d inputs", n)
	} else {
		t.Log("no SHA extensions on this CPU: only the fallback is tested")
	}
	defer func(v bool) { useSHANI = v }(useSHANI)
	useSHANI = false
	for _, b := range inputs {
		if got, want := HashSecret(b), Hash(sha256.Sum256(b)); got != want {
			t.Fatalf("fallback HashSecret(%x) = %x, want %x", b, got, want)
		}
	}
}
