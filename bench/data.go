package bench

import (
	"math/rand/v2"
	"net/netip"
)

// Allowlist is one generated allowlist with addresses that hit and miss it.
type Allowlist struct {
	Prefixes []netip.Prefix
	Hits     []netip.Addr // each inside some prefix
	Misses   []netip.Addr // each outside every prefix
}

// GenAllowlist returns n random public prefixes of one family (IPv4 /16 to
// /32 under 1.0.0.0/4-ish space, IPv6 /40 to /128 under 2a00::/8) and 64
// probes that hit and 64 that miss, decided by a linear scan. The same seed
// gives the same data.
func GenAllowlist(seed uint64, n int, v6 bool) Allowlist {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	var al Allowlist
	for len(al.Prefixes) < n {
		var a netip.Addr
		var bits int
		if v6 {
			var b [16]byte
			b[0], b[1] = 0x2a, byte(r.IntN(256))
			for i := 2; i < 16; i++ {
				b[i] = byte(r.Uint32())
			}
			a, bits = netip.AddrFrom16(b), 40+r.IntN(89)
		} else {
			a, bits = netip.AddrFrom4([4]byte{byte(1 + r.IntN(9)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}), 16+r.IntN(17)
		}
		al.Prefixes = append(al.Prefixes, netip.PrefixFrom(a, bits).Masked())
	}
	for len(al.Hits) < 64 {
		p := al.Prefixes[r.IntN(n)]
		b := p.Addr().AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			if r.IntN(2) == 0 {
				b[i/8] |= 0x80 >> (i % 8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		al.Hits = append(al.Hits, a)
	}
	for len(al.Misses) < 64 {
		b := al.Hits[r.IntN(len(al.Hits))].AsSlice()
		b[len(b)-1] ^= 0x55
		b[1] ^= byte(r.Uint32())
		a, _ := netip.AddrFromSlice(b)
		if !Contains(al.Prefixes, a) {
			al.Misses = append(al.Misses, a)
		}
	}
	return al
}

// Contains is the reference answer: a linear scan with netip.Prefix.Contains.
func Contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
