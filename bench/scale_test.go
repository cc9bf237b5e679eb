package bench

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/keygate/keygate/engine"
)

// BenchmarkCheckKeys measures one engine decision (format check, SHA-256,
// key lookup, allowlist) with the key drawn at random from n keys of 5
// entries each, so that at 1M keys the key's data is rarely in cache.
// Compare with BenchmarkMemLatency: a check costs a few dependent memory
// loads more than its cached cost.
func BenchmarkCheckKeys(b *testing.B) {
	for _, n := range []int{1000, 1_000_000} {
		if testing.Short() && n > 1000 {
			continue
		}
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(11, uint64(n)))
			keys := make([]*engine.Key, n)
			secrets := make([][]byte, n)
			hits := make([]netip.Addr, n)
			for i := range keys {
				s, hint := engine.NewSecret()
				secrets[i] = []byte(s)
				var entries []engine.Entry
				for j := range 5 {
					a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(9)), byte(r.Uint32()), byte(r.Uint32()), 0})
					entries = append(entries, engine.Entry{ID: fmt.Sprint("ent_", j), Prefix: netip.PrefixFrom(a, 24)})
				}
				hits[i] = entries[r.IntN(5)].Prefix.Addr().Next()
				keys[i] = &engine.Key{ID: fmt.Sprintf("key_%016d", i), Name: "bench", Hash: engine.HashSecret(secrets[i]), Hint: hint, Allowlist: entries}
			}
			e := engine.New()
			e.Load(keys, 1)
			// The requests, read in order (as a server reads them from its
			// socket buffers): the misses measured are the engine's.
			type probe struct {
				secret [engine.SecretLen]byte
				ip     netip.Addr
			}
			probes := make([]probe, 1<<18)
			for i := range probes {
				k := r.IntN(n)
				copy(probes[i].secret[:], secrets[k])
				probes[i].ip = hits[k]
			}
			now := time.Now()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := &probes[i&(len(probes)-1)]
				if e.Check(p.secret[:], nil, p.ip, now).Decision != engine.Allow {
					b.Fatal("not allowed")
				}
				i++
			}
		})
	}
}

// BenchmarkMemLatency chases pointers through a random cycle over 256 MiB:
// the cost of one dependent load that misses every cache (and the TLB).
func BenchmarkMemLatency(b *testing.B) {
	const n = 256 << 20 / 8
	next := make([]uint64, n)
	perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
	for i := range perm {
		next[perm[i]] = uint64(perm[(i+1)%n])
	}
	p := uint64(perm[0])
	for b.Loop() {
		p = next[p]
	}
	if p == n {
		b.Log(p)
	}
}
