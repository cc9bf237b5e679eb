package engine

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"testing"

	"github.com/keygate/keygate/internal/golden"
)

var sinkBool bool
var sinkInt int

// BenchmarkCheckParts times each step of BenchmarkCheck's decision on its
// own, over the same keys, secrets and addresses: the secret's shape,
// SHA-256, the table lookup, the scope and the trie. Their sum is below
// Check's time, where each step waits for the one before; the rest is the
// glue (expiry, Result) and the misses on the key's data. Two more are not
// steps of Check but what they replaced, for comparison: sha256.Sum256,
// and the format with its checksum (ValidSecretFormat).
func BenchmarkCheckParts(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		e, keys, secrets := benchEngine(n)
		s := e.Snapshot()
		addrs := make([]netip.Addr, 1024)
		hashes := make([]Hash, 1024)
		for i := range addrs {
			addrs[i] = golden.LastAddr(keys[i%n].Allowlist[i%5].Prefix)
			hashes[i] = HashSecret(secrets[i%n])
		}
		scope := []byte("read")
		b.Run(fmt.Sprintf("keys=%d/shape", n), func(b *testing.B) {
			i := 0
			start := cpuTime()
			for b.Loop() {
				sinkBool = secretShape(secrets[i&1023%n])
				i++
			}
			reportCPU(b, start)
		})
		b.Run(fmt.Sprintf("keys=%d/sha256", n), func(b *testing.B) {
			i := 0
			start := cpuTime()
			for b.Loop() {
				h := sum256Secret((*[SecretLen]byte)(secrets[i&1023%n]))
				sinkInt += int(h[0])
				i++
			}
			reportCPU(b, start)
		})
		b.Run(fmt.Sprintf("keys=%d/not-in-check/format+checksum", n), func(b *testing.B) {
			i := 0
			start := cpuTime()
			for b.Loop() {
				sinkBool = ValidSecretFormat(secrets[i&1023%n])
				i++
			}
			reportCPU(b, start)
		})
		b.Run(fmt.Sprintf("keys=%d/not-in-check/sha256.Sum256", n), func(b *testing.B) {
			i := 0
			start := cpuTime()
			for b.Loop() {
				h := sha256.Sum256(secrets[i&1023%n])
				sinkInt += int(h[0])
				i++
			}
			reportCPU(b, start)
		})
		b.Run(fmt.Sprintf("keys=%d/table", n), func(b *testing.B) {
			i := 0
			start := cpuTime()
			for b.Loop() {
				c, _ := s.find(&hashes[i&1023])
				sinkBool = c != nil
				i++
			}
			reportCPU(b, start)
		})
		b.Run(fmt.Sprintf("keys=%d/scope", n), func(b *testing.B) {
			ks := make([]*KeyInfo, 1024)
			for j := range ks {
				ks[j] = s.Lookup(hashes[j])
			}
			i := 0
			start := cpuTime()
			for b.Loop() {
				sinkBool = ks[i&1023].HasScope(scope)
				i++
			}
			reportCPU(b, start)
		})
		b.Run(fmt.Sprintf("keys=%d/trie", n), func(b *testing.B) {
			ms := make([]*Matcher, 1024)
			for j := range ms {
				c, _ := s.find(&hashes[j])
				ms[j] = &c.m
			}
			i := 0
			start := cpuTime()
			for b.Loop() {
				sinkInt += ms[i&1023].tries.match(addrs[i&1023])
				i++
			}
			reportCPU(b, start)
		})
	}
}
