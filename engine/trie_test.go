package engine

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/internal/golden"
)

// slowMatch is the reference match (internal/golden) over entries.
func slowMatch(entries []Entry, addr netip.Addr) int { return golden.Match(prefixesOf(entries), addr) }

func prefixesOf(entries []Entry) []netip.Prefix {
	out := make([]netip.Prefix, len(entries))
	for i, e := range entries {
		out[i] = e.Prefix
	}
	return out
}

func entriesOf(prefixes []netip.Prefix) []Entry {
	out := make([]Entry, len(prefixes))
	for i, p := range prefixes {
		out[i] = Entry{Prefix: p}
	}
	return out
}

func probes(r *rand.Rand, entries []Entry, random int) []netip.Addr {
	return golden.Probes(r, prefixesOf(entries), random)
}

func randEntries(r *rand.Rand, n int) []Entry { return entriesOf(golden.RandPrefixes(r, n)) }

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
		for _, p := range probes(r, entries, 20) {
			forms := []netip.Addr{p}
			if round%4 == 0 { // in a quarter of the rounds, to keep the test short
				forms = addrForms(p)
			}
			for _, a := range forms {
				checked++
				if got, want := c.Match(a), slowMatch(entries, a); got != want {
					t.Fatalf("round %d: match(%s) = %d, want %d; entries %v", round, a, got, want, entries)
				}
			}
		}
	}
	t.Logf("%d probes agree", checked)
}

// addrForms returns a and the forms of it that match tells apart by netip's
// handle (addrWords): IPv4 also as IPv4-mapped IPv6, IPv6 also with a zone
// and with the zone removed again, each a different path to the same or
// no answer.
func addrForms(a netip.Addr) []netip.Addr {
	if a.Is4() {
		mapped := netip.AddrFrom16(a.As16())
		return []netip.Addr{a, mapped, mapped.WithZone("eth0")}
	}
	zoned := a.WithZone("eth0")
	return []netip.Addr{a, zoned, zoned.WithZone("")}
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
		{[]netip.Prefix{p("::/0")}, netip.Addr{}, -1},
		{[]netip.Prefix{p("203.0.113.0/24")}, a("::ffff:203.0.113.5%eth0"), -1},
		{[]netip.Prefix{p("2001:db8::/32")}, a("2001:db8::1%eth0").WithZone(""), 0},
		// The jump table's stride in lo (a root prefix of 64 bits or
		// more) and an entry decided within the stride whose root
		// prefix the address leaves.
		{[]netip.Prefix{p("2001:db8:0:1::/64"), p("2001:db8:0:1:8000::/65"), p("2001:db8:0:1::1/128")}, a("2001:db8:0:1:8000::1"), 1},
		{[]netip.Prefix{p("2001:db8:0:1::/64"), p("2001:db8:0:1:8000::/65"), p("2001:db8:0:1::1/128")}, a("2001:db8:0:1::1"), 2},
		{[]netip.Prefix{p("2001:db8::/32"), p("2001:db8::/33"), p("2001:db8:8000::/33")}, a("2001:db9::"), -1},
		{[]netip.Prefix{p("2001:db8::/32"), p("2001:db8::/33"), p("2001:db8:8000::/33")}, a("2001:db8:ffff::"), 2},
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
		for _, a := range addrForms(addr) {
			if got, want := c.Match(a), slowMatch(entries, a); got != want {
				t.Fatalf("match(%s) = %d, want %d; entries %v", a, got, want, entries)
			}
		}
	})
}

// TestTrieNodesSizedExactly: a trie of n prefixes reserves at most the
// 2n-1 nodes it can need, so that 5 IPv6 entries take a 224 B allocation,
// not 240 B (BenchmarkMemoryParts).
func TestTrieNodesSizedExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 5, 20} {
		m := NewMatcher(benchPrefixes(r, n, true))
		if c := cap(m.v6.nodes); c > 2*n-1 {
			t.Errorf("%d IPv6 entries: %d nodes reserved, want at most %d", n, c, 2*n-1)
		}
	}
}

// TestWords6Layout breaks loudly if netip.Addr stops holding an address as
// (hi, lo uint64) first and then the handle that tells IPv4 from IPv6 and
// zones, which addrWords reads through unsafe.
func TestWords6Layout(t *testing.T) {
	require.Equal(t, uintptr(24), unsafe.Sizeof(netip.Addr{}), "netip.Addr changed size: addrWords reads its internals")
	require.Nil(t, handle(netip.Addr{}), "the zero netip.Addr's handle is no longer nil")
	r := rand.New(rand.NewPCG(3, 4))
	addrs := []netip.Addr{netip.IPv6Unspecified(), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:192.0.2.1")}
	for range 1000 {
		addrs = append(addrs, golden.RandAddr(r, true))
		a4 := golden.RandAddr(r, false)
		b4 := a4.As4()
		require.Equal(t, binary.BigEndian.Uint32(b4[:]), uint32(addrWords(&a4).lo), "%s: netip no longer holds IPv4 in lo's low 32 bits", a4)
	}
	for _, a := range addrs {
		for _, f := range addrForms(a) {
			require.Equal(t, f.Is4(), handle(f) == zIPv4, "%s: netip's z4 handle changed", f)
			require.Equal(t, f.Is6() && f.Zone() == "", handle(f) == zIPv6, "%s: netip's z6noz handle changed", f)
		}
		b := a.As16()
		w := addrWords(&a)
		hi, lo := w.hi, w.lo
		require.Equal(t, binary.BigEndian.Uint64(b[:8]), hi, "addrWords(%s) hi: netip.Addr's layout changed", a)
		require.Equal(t, binary.BigEndian.Uint64(b[8:]), lo, "addrWords(%s) lo: netip.Addr's layout changed", a)
	}
}
