// Package golden holds the slow, obviously-correct references keygate's
// fast code is tested against, and the random data both the tests and
// bench/ draw from (gaissmai/bart's internal/golden habit): a linear scan
// over netip.Prefix values, and generators of addresses, prefixes and
// allowlists that nest and overlap often. It imports only the standard
// library.
package golden

import (
	"math/rand/v2"
	"net/netip"
)

// Match is the reference allowlist match: a linear scan returning the index
// of the most specific prefix containing addr (the first one among
// equals), or -1. An invalid or zoned addr matches nothing; IPv4-mapped
// addresses and prefixes (::ffff:0:0/96 and longer) count as IPv4.
func Match(prefixes []netip.Prefix, addr netip.Addr) int {
	if !addr.IsValid() || addr.Zone() != "" {
		return -1
	}
	addr = addr.Unmap()
	best, bestBits := -1, -1
	for i, p := range prefixes {
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				continue
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if p.Contains(addr) && p.Bits() > bestBits {
			best, bestBits = i, p.Bits()
		}
	}
	return best
}

// Contains is the reference answer to "is a in any prefix": a linear scan
// with netip.Prefix.Contains.
func Contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// RandAddr returns a random address of the family, drawn near a small set of
// bases so that random prefixes nest and overlap often.
func RandAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		b[0], b[1] = 0x20, 0x01
		b[2] = byte(r.IntN(3))
		for i := 3; i < 16; i++ {
			if r.IntN(4) == 0 {
				b[i] = byte(r.Uint32())
			}
		}
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	b[0] = byte(198 + r.IntN(3))
	for i := 1; i < 4; i++ {
		if r.IntN(3) == 0 {
			b[i] = byte(r.Uint32())
		}
	}
	return netip.AddrFrom4(b)
}

// RandPrefix returns a random prefix of the family, masked, of any length.
func RandPrefix(r *rand.Rand, v6 bool) netip.Prefix {
	a := RandAddr(r, v6)
	return netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked()
}

// LastAddr returns the last address of p.
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Probes returns, for each prefix, its first and last address and the
// addresses just outside, plus random addresses of both families.
func Probes(r *rand.Rand, prefixes []netip.Prefix, random int) []netip.Addr {
	var out []netip.Addr
	for _, p := range prefixes {
		first, last := p.Addr(), LastAddr(p)
		out = append(out, first, last, first.Prev(), last.Next())
		// A random address inside, and one with a random bit flipped.
		b := first.AsSlice()
		for j := p.Bits(); j < len(b)*8; j++ {
			if r.IntN(2) == 0 {
				b[j/8] |= 0x80 >> (j % 8)
			}
		}
		j := r.IntN(len(b) * 8)
		in, _ := netip.AddrFromSlice(b)
		b[j/8] ^= 0x80 >> (j % 8)
		flipped, _ := netip.AddrFromSlice(b)
		out = append(out, in, flipped)
	}
	for range random {
		out = append(out, RandAddr(r, r.IntN(2) == 0))
	}
	return out
}

// RandPrefixes returns n random prefixes. Half the time they all share a
// random common prefix, so the trie's root (and its jump table) sits at
// every possible depth, including across the 64-bit boundary of IPv6.
func RandPrefixes(r *rand.Rand, n int) []netip.Prefix {
	entries := make([]netip.Prefix, n)
	if r.IntN(2) == 0 {
		for i := range entries {
			entries[i] = RandPrefix(r, r.IntN(2) == 0)
		}
		return entries
	}
	base := RandAddr(r, r.IntN(2) == 0).AsSlice()
	common := r.IntN(len(base)*8 + 1)
	for i := range entries {
		b := append([]byte(nil), base...)
		for j := common; j < len(b)*8; j++ {
			if r.IntN(2) == 0 {
				b[j/8] ^= 0x80 >> (j % 8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		bits := common + r.IntN(len(b)*8-common+1)
		entries[i] = netip.PrefixFrom(a, bits).Masked()
	}
	return entries
}

// PublicPrefixes returns n random public prefixes of one family: IPv4
// /16 to /32 under 1.0.0.0 to 9.255.255.255, IPv6 /40 to /128 under
// 2a00::/8. The same r state gives the same prefixes.
func PublicPrefixes(r *rand.Rand, n int, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for len(out) < n {
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
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out
}

// Allowlist is one generated allowlist with addresses that hit and miss it.
type Allowlist struct {
	Prefixes []netip.Prefix
	Hits     []netip.Addr // each inside some prefix
	Misses   []netip.Addr // each outside every prefix
}

// GenAllowlist returns n PublicPrefixes and 64 probes that hit and 64 that
// miss, decided by Contains. The same seed gives the same data.
func GenAllowlist(seed uint64, n int, v6 bool) Allowlist {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	al := Allowlist{Prefixes: PublicPrefixes(r, n, v6)}
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

// MatchLive is Match over the prefixes whose live[i] is true: the
// reference for an allowlist whose entries expire or are switched off (an
// entry that is not live matches nothing, and the longest live one wins).
func MatchLive(prefixes []netip.Prefix, live []bool, addr netip.Addr) int {
	best, bestBits := -1, -1
	for i, p := range prefixes {
		if !live[i] {
			continue
		}
		if j := Match(prefixes[i:i+1], addr); j == 0 {
			b := p.Bits()
			if p.Addr().Is4In6() {
				b -= 96
			}
			if b > bestBits {
				best, bestBits = i, b
			}
		}
	}
	return best
}

// Cover is the reference minimal exact cover of a set of addresses, by
// brute force: every prefix no shorter than floor (per family: floor4,
// floor6) all of whose addresses are in set, and whose parent is either
// shorter than the floor or not wholly in set. Only for small sets: it
// walks every address of every candidate.
func Cover(set map[netip.Addr]bool, floor4, floor6 int) []netip.Prefix {
	memo := map[netip.Prefix]bool{}
	full := func(p netip.Prefix) bool {
		if v, ok := memo[p]; ok {
			return v
		}
		v := true
		for a := p.Addr(); p.Contains(a); a = a.Next() {
			if !set[a] {
				v = false
				break
			}
			if !a.Next().IsValid() {
				break
			}
		}
		memo[p] = v
		return v
	}
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for a := range set {
		floor := floor4
		if a.Is6() {
			floor = floor6
		}
		// The shortest wholly covered prefix holding a.
		var best netip.Prefix
		for bits := a.BitLen(); bits >= floor; bits-- {
			p := netip.PrefixFrom(a, bits).Masked()
			if !full(p) {
				break
			}
			best = p
		}
		if best.IsValid() && !seen[best] {
			seen[best] = true
			out = append(out, best)
		}
	}
	return out
}
