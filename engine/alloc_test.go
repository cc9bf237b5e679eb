//go:build !race

package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNoAllocs(t *testing.T) {
	e := New()
	k, s := newTestKey(t, []string{"read"}, "203.0.113.0/24", "2001:db8::/48", "198.51.100.7")
	open, os := newTestKey(t, nil)
	// Report-only, with an entry that expires, one that is off, and a
	// rotated secret in its overlap.
	ro, rs := newTestKey(t, nil, "203.0.113.0/24", "203.0.113.5", "198.51.100.0/24")
	ro.ReportOnly = true
	ro.Allowlist[1].ExpiresAt = now.Add(-time.Second)
	ro.Allowlist[2].Disabled = true
	roNew := ro.Clone()
	roNew.Rotate(now, time.Hour)
	e.Load([]*Key{k, open, roNew}, 1)
	reportSecret := []byte(rs)
	secret, openSecret, scope := []byte(s), []byte(os), []byte("read")
	u, _ := NewSecret()
	unknown, garbage := []byte(u), []byte("garbage")
	c := NewMatcher(k.Allowlist)
	v4 := netip.MustParseAddr("203.0.113.5")
	v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
	other := netip.AddrFrom4([4]byte{8, 8, 8, 8})
	// Each case returns what it decided; the result of the measured runs
	// is checked, so that a case cannot measure a shortcut (net/netip's
	// sink-and-check habit).
	tests := []struct {
		name string
		fn   func() Decision
		want Decision
	}{
		{"Check allow v4", func() Decision { return e.Check(secret, scope, v4, now).Decision }, Allow},
		{"Check allow v6", func() Decision { return e.Check(secret, scope, v6, now).Decision }, Allow},
		{"Check deny ip", func() Decision { return e.Check(secret, scope, other, now).Decision }, DenyIP},
		{"Check deny scope", func() Decision { return e.Check(secret, []byte("write"), other, now).Decision }, DenyScope},
		{"Check unknown", func() Decision { return e.Check(unknown, nil, other, now).Decision }, DenyInvalidKey},
		{"Check garbage", func() Decision { return e.Check(garbage, nil, other, now).Decision }, DenyInvalidKey},
		{"Check empty allowlist", func() Decision { return e.Check(openSecret, nil, other, now).Decision }, Allow},
		{"Check report-only miss, previous secret", func() Decision { return e.Check(reportSecret, nil, other, now).Decision }, AllowReported},
		{"Check expired entry falls back", func() Decision { return e.Check(reportSecret, nil, v4, now).Decision }, Allow},
		{"Check disabled entry", func() Decision {
			return e.Check(reportSecret, nil, netip.AddrFrom4([4]byte{198, 51, 100, 1}), now).Decision
		}, AllowReported},
		{"Check previous secret after overlap", func() Decision { return e.Check(reportSecret, nil, v4, now.Add(time.Hour)).Decision }, DenyInvalidKey},
	}
	for _, tt := range tests {
		var got Decision
		if n := testing.AllocsPerRun(1000, func() { got = tt.fn() }); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
		if got != tt.want {
			t.Errorf("%s: decided %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, tt := range []struct {
		name string
		addr netip.Addr
		want int
	}{
		{"Match v4", netip.AddrFrom4([4]byte{203, 0, 113, 1}), 0},
		{"Match v4-mapped", netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 203, 14: 113, 15: 1}), 0},
		{"Match miss", other, -1},
	} {
		var got int
		if n := testing.AllocsPerRun(1000, func() { got = c.Match(tt.addr) }); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
		if got != tt.want {
			t.Errorf("%s: matched entry %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestCompileAllocs pins what compiling a key allocates: the compiled key,
// its packed text and, for 5 IPv4 entries, the build arena, the trie's
// nodes and jump table and the IPv4 nodes made from them (IPv6: no
// IPv4 nodes). The build nodes come from the arena, not one allocation
// each.
func TestCompileAllocs(t *testing.T) {
	k, _ := newTestKey(t, []string{"read"}, "203.0.113.0/24", "198.51.100.7", "192.0.2.0/25", "192.0.2.128/26", "203.0.114.0/24")
	k6, _ := newTestKey(t, nil, "2001:db8::/48", "2001:db8:1::/48", "2001:db8:2::1", "2001:db8:3::/56", "2001:db8:4::/64")
	assert.Equal(t, 6.0, testing.AllocsPerRun(100, func() { compile(k) }), "IPv4")
	assert.Equal(t, 5.0, testing.AllocsPerRun(100, func() { compile(k6) }), "IPv6")
}
