package engine

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// slowMatch is the obviously-correct reference: a linear scan returning the
// most specific entry containing addr (the first one among equals), with
// the same normalisation rules as compiled.match.
func slowMatch(entries []Entry, addr netip.Addr) int {
	if !addr.IsValid() || addr.Zone() != "" {
		return -1
	}
	addr = addr.Unmap()
	best, bestBits := -1, -1
	for i, e := range entries {
		p := e.Prefix
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

// randAddr returns a random address of the family, drawn near a small set of
// bases so that random prefixes nest and overlap often.
func randAddr(r *rand.Rand, v6 bool) netip.Addr {
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

func randPrefix(r *rand.Rand, v6 bool) netip.Prefix {
	a := randAddr(r, v6)
	return netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked()
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// probes returns, for each entry, its first and last address and the
// addresses just outside, plus random addresses of both families.
func probes(r *rand.Rand, entries []Entry, random int) []netip.Addr {
	var out []netip.Addr
	for _, e := range entries {
		first, last := e.Prefix.Addr(), lastAddr(e.Prefix)
		out = append(out, first, last, first.Prev(), last.Next())
		// A random address inside, and one with a random bit flipped.
		b := first.AsSlice()
		for j := e.Prefix.Bits(); j < len(b)*8; j++ {
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
		out = append(out, randAddr(r, r.IntN(2) == 0))
	}
	return out
}

// randEntries returns n random entries. Half the time they all share a
// random common prefix, so the trie's root (and its jump table) sits at
// every possible depth, including across the 64-bit boundary of IPv6.
func randEntries(r *rand.Rand, n int) []Entry {
	entries := make([]Entry, n)
	if r.IntN(2) == 0 {
		for i := range entries {
			entries[i] = Entry{Prefix: randPrefix(r, r.IntN(2) == 0)}
		}
		return entries
	}
	base := randAddr(r, r.IntN(2) == 0).AsSlice()
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
		entries[i] = Entry{Prefix: netip.PrefixFrom(a, bits).Masked()}
	}
	return entries
}

func TestTrieDifferential(t *testing.T) {
	rounds := 100000
	if testing.Short() {
		rounds = 2000
	}
	r := rand.New(rand.NewPCG(1, 2))
	checked := 0
	for round := range rounds {
		entries := randEntries(r, 1+r.IntN(MaxEntries))
		c := NewMatcher(entries)
		for _, a := range probes(r, entries, 20) {
			checked++
			if got, want := c.Match(a), slowMatch(entries, a); got != want {
				t.Fatalf("round %d: match(%s) = %d, want %d; entries %v", round, a, got, want, entries)
			}
		}
	}
	t.Logf("%d probes agree", checked)
}

// TestTrieRegressions keeps every case that once went wrong, or nearly did.
func TestTrieRegressions(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	tests := []struct {
		entries []netip.Prefix
		addr    netip.Addr
		want    int
	}{
		{[]netip.Prefix{p("0.0.0.0/0")}, a("1.2.3.4"), 0},
		{[]netip.Prefix{p("::/0")}, a("1.2.3.4"), -1},
		{[]netip.Prefix{p("0.0.0.0/0")}, a("::1"), -1},
		{[]netip.Prefix{p("203.0.113.5/32")}, a("203.0.113.5"), 0},
		{[]netip.Prefix{p("203.0.113.5/32")}, a("203.0.113.4"), -1},
		{[]netip.Prefix{p("203.0.113.5/32")}, a("::ffff:203.0.113.5"), 0},
		{[]netip.Prefix{p("203.0.113.0/24"), p("203.0.113.128/25")}, a("203.0.113.200"), 1},
		{[]netip.Prefix{p("203.0.113.128/25"), p("203.0.113.0/24")}, a("203.0.113.1"), 1},
		{[]netip.Prefix{p("2001:db8::1/128")}, a("2001:db8::1"), 0},
		{[]netip.Prefix{p("2001:db8::1/128")}, a("2001:db8::1%eth0"), -1},
		{[]netip.Prefix{p("2001:db8::/64"), p("2001:db8::8000:0:0:0/65")}, a("2001:db8::ffff:0:0:1"), 1},
		{[]netip.Prefix{p("2001:db8::/127")}, a("2001:db8::1"), 0},
		{[]netip.Prefix{p("2001:db8::/127")}, a("2001:db8::2"), -1},
		{[]netip.Prefix{p("::ffff:203.0.113.0/120")}, a("203.0.113.9"), 0},
		{[]netip.Prefix{p("203.0.113.0/24")}, netip.Addr{}, -1},
	}
	for _, tt := range tests {
		entries := make([]Entry, len(tt.entries))
		for i, e := range tt.entries {
			entries[i] = Entry{Prefix: e}
		}
		c := NewMatcher(entries)
		if got := c.Match(tt.addr); got != tt.want {
			t.Errorf("%v contains %s: got %d, want %d", tt.entries, tt.addr, got, tt.want)
		}
		if got := slowMatch(entries, tt.addr); got != tt.want {
			t.Errorf("reference disagrees on %v contains %s: got %d, want %d", tt.entries, tt.addr, got, tt.want)
		}
	}
}

func FuzzTrie(f *testing.F) {
	f.Add([]byte{203, 0, 113, 0, 24, 198, 51, 100, 7, 32}, []byte{203, 0, 113, 9})
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 48}, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, prefixes, probe []byte) {
		// prefixes: a sequence of (4 address bytes + 1 length byte) or, after
		// a 0x20 first byte, (16 + 1); probe: 4 or 16 bytes.
		var entries []Entry
		for len(prefixes) > 0 && len(entries) < MaxEntries {
			n := 4
			if prefixes[0] == 0x20 {
				n = 16
			}
			if len(prefixes) < n+1 {
				break
			}
			a, _ := netip.AddrFromSlice(prefixes[:n])
			bits := int(prefixes[n]) % (a.BitLen() + 1)
			entries = append(entries, Entry{Prefix: netip.PrefixFrom(a, bits).Masked()})
			prefixes = prefixes[n+1:]
		}
		addr, ok := netip.AddrFromSlice(probe)
		if !ok {
			return
		}
		c := NewMatcher(entries)
		if got, want := c.Match(addr), slowMatch(entries, addr); got != want {
			t.Fatalf("match(%s) = %d, want %d; entries %v", addr, got, want, entries)
		}
	})
}
