package engine

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/golden"
)

// benchPrefixes returns n random public prefixes of one family.
func benchPrefixes(r *rand.Rand, n int, v6 bool) []Entry {
	return entriesOf(golden.PublicPrefixes(r, n, v6))
}

// benchEntries returns benchPrefixes and 64 addresses that hit and 64 that
// miss them.
func benchEntries(r *rand.Rand, n int, v6 bool) (entries []Entry, hits, misses []netip.Addr) {
	entries = benchPrefixes(r, n, v6)
	ref := NewMatcher(entries)
	for len(hits) < 64 {
		p := entries[r.IntN(n)].Prefix
		if p.Bits() < p.Addr().BitLen() {
			hits = append(hits, golden.LastAddr(p))
		} else {
			hits = append(hits, p.Addr())
		}
	}
	for len(misses) < 64 {
		h := hits[r.IntN(len(hits))]
		var a netip.Addr
		if v6 {
			b := h.As16()
			b[15] ^= 0x55
			b[7] ^= byte(r.Uint32())
			a = netip.AddrFrom16(b)
		} else {
			b := h.As4()
			b[1] ^= byte(r.Uint32())
			b[3] ^= 0x55
			a = netip.AddrFrom4(b)
		}
		if !ref.Contains(a) {
			misses = append(misses, a)
		}
	}
	return entries, hits, misses
}

// BenchmarkContains measures the trie alone; bench/ compares it with the
// alternatives on the same data.
func BenchmarkContains(b *testing.B) {
	for _, fam := range []string{"v4", "v6"} {
		for _, n := range []int{1, 5, 20} {
			r := rand.New(rand.NewPCG(uint64(n), 7))
			entries, hits, misses := benchEntries(r, n, fam == "v6")
			m := NewMatcher(entries)
			for _, probe := range []struct {
				name  string
				addrs []netip.Addr
			}{{"hit", hits}, {"miss", misses}} {
				b.Run(fmt.Sprintf("%s/n=%d/%s", fam, n, probe.name), func(b *testing.B) {
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						m.Contains(probe.addrs[i&63])
						i++
					}
				})
			}
		}
	}
}

// benchKeys builds n keys with entries random prefixes each.
func benchKeys(r *rand.Rand, n, entries int) ([]*Key, [][]byte) {
	keys := make([]*Key, n)
	secrets := make([][]byte, n)
	for i := range keys {
		e := benchPrefixes(r, entries, i%2 == 1)
		for j := range e {
			e[j].ID = fmt.Sprintf("ent_%012d", j)
		}
		s, hint := NewSecret()
		secrets[i] = []byte(s)
		keys[i] = &Key{ID: fmt.Sprintf("key_%016d", i), Name: "bench", Scopes: []string{"read"}, Hash: HashSecret(secrets[i]), Hint: hint, Allowlist: e}
	}
	return keys, secrets
}

// benchEngine returns an engine holding benchKeys' n keys with 5 entries
// each, the same for every benchmark of the decision.
func benchEngine(n int) (*Engine, []*Key, [][]byte) {
	keys, secrets := benchKeys(rand.New(rand.NewPCG(3, uint64(n))), n, 5)
	e := New()
	e.Load(keys, 1)
	return e, keys, secrets
}

// BenchmarkCheck measures the full decision: the secret's shape, SHA-256,
// key lookup among n keys, scope and allowlist.
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		e, keys, secrets := benchEngine(n)
		addrs := make([]netip.Addr, 1024)
		for i := range addrs {
			addrs[i] = golden.LastAddr(keys[i%n].Allowlist[i%5].Prefix)
		}
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			scope := []byte("read")
			i := 0
			start := cpuTime()
			for b.Loop() {
				j := i & 1023
				if e.Check(secrets[j%n], scope, addrs[j], now).Decision != Allow {
					b.Fatal("not allowed")
				}
				i++
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkCheckInvalid measures the decision for secrets that are refused:
// unknown ones of the right format, the right shape with a wrong checksum,
// a character outside base62, and the wrong length. The first two cost a
// SHA-256 and a table miss; the others stop at the shape.
func BenchmarkCheckInvalid(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		e, keys, secrets := benchEngine(n)
		addr := golden.LastAddr(keys[0].Allowlist[0].Prefix)
		for _, tc := range []struct {
			name   string
			damage func(s []byte) []byte
		}{
			{"unknown", func([]byte) []byte { s, _ := NewSecret(); return []byte(s) }},
			{"bad-checksum", func(s []byte) []byte {
				s[SecretLen-1] = base62[(strings.IndexByte(base62, s[SecretLen-1])+1)%62]
				return s
			}},
			{"bad-char", func(s []byte) []byte { s[20] = '-'; return s }},
			{"short", func(s []byte) []byte { return s[:SecretLen-1] }},
		} {
			bad := make([][]byte, 1024)
			for i := range bad {
				bad[i] = tc.damage(slices.Clone(secrets[i%n]))
			}
			b.Run(fmt.Sprintf("keys=%d/%s", n, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				start := cpuTime()
				for b.Loop() {
					if e.Check(bad[i&1023], nil, addr, now).Decision != DenyInvalidKey {
						b.Fatal("not refused")
					}
					i++
				}
				reportCPU(b, start)
			})
		}
	}
}

// reportCPU reports the process's CPU time per operation since start
// ("cpu-ns/op"), which a loaded machine inflates far less than ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	if d := cpuTime() - start; d > 0 {
		b.ReportMetric(float64(d)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkPublish measures replacing one key among n keys: the cost of a
// management change becoming live. Each put alternates a key between its
// original and an edited copy made beforehand, so that the loop measures
// the publication, not the copying of a Key; the keys are built only for
// the sizes the -bench pattern selects. cpu-ns/op is the process's CPU
// time per put (the collector's included), which a loaded machine
// distorts less than the wall clock.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1000, 100000, 1000000} {
		if testing.Short() && n > 100000 {
			continue
		}
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(4, uint64(n)))
			keys, _ := benchKeys(r, n, 5)
			e := New()
			e.Load(keys, 1)
			var versions [2][1024]*Key
			for j := range versions[0] {
				versions[0][j] = keys[j%n]
				versions[1][j] = keys[j%n].Clone()
				versions[1][j].Name = "edited"
			}
			// The daemon keeps no Key once loaded: neither does the
			// benchmark, so that the collector works over the heap the
			// engine holds, not over the benchmark's keys.
			keys = nil
			runtime.GC()
			b.ReportAllocs()
			i := 0
			start := cpuTime()
			for b.Loop() {
				e.Put(versions[i>>10&1][i&1023])
				i++
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkMemoryPerKey reports the heap held per key at 1M keys with 5
// entries each, everything included (key data, tries, index).
func BenchmarkMemoryPerKey(b *testing.B) {
	const n = 1000000
	for b.Loop() {
		r := rand.New(rand.NewPCG(5, 5))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		keys, _ := benchKeys(r, n, 5)
		e := New()
		e.Load(keys, 1)
		keys = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/key")
		runtime.KeepAlive(e)
	}
}

// BenchmarkLoad measures a daemon's first snapshot: Load of n keys with
// 5 entries each (compiled in up to GOMAXPROCS goroutines: compare -cpu 1
// and -cpu 2). At 1M keys it took 14.5M allocations (1.86 GB) before
// Load filled each bucket once, 13.5M (1.75 GB) after.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{100000} {
		keys, _ := benchKeys(rand.New(rand.NewPCG(6, uint64(n))), n, 5)
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				New().Load(keys, 1)
			}
		})
	}
}
