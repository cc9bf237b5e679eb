//go:build !race

package engine

import (
	"net/netip"
	"testing"
)

func TestNoAllocs(t *testing.T) {
	e := New()
	k, s := newTestKey(t, []string{"read"}, "203.0.113.0/24", "2001:db8::/48", "198.51.100.7")
	open, os := newTestKey(t, nil)
	e.Load([]*Key{k, open}, 1)
	secret, openSecret, scope := []byte(s), []byte(os), []byte("read")
	u, _ := NewSecret()
	unknown, garbage := []byte(u), []byte("garbage")
	c := NewMatcher(k.Allowlist)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Check allow v4", func() { e.Check(secret, scope, netip.MustParseAddr("203.0.113.5"), now) }},
		{"Check allow v6", func() { e.Check(secret, scope, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}), now) }},
		{"Check deny ip", func() { e.Check(secret, scope, netip.AddrFrom4([4]byte{8, 8, 8, 8}), now) }},
		{"Check deny scope", func() { e.Check(secret, []byte("write"), netip.AddrFrom4([4]byte{8, 8, 8, 8}), now) }},
		{"Check unknown", func() { e.Check(unknown, nil, netip.AddrFrom4([4]byte{8, 8, 8, 8}), now) }},
		{"Check garbage", func() { e.Check(garbage, nil, netip.AddrFrom4([4]byte{8, 8, 8, 8}), now) }},
		{"Check empty allowlist", func() { e.Check(openSecret, nil, netip.AddrFrom4([4]byte{8, 8, 8, 8}), now) }},
		{"Contains v4", func() { c.Match(netip.AddrFrom4([4]byte{203, 0, 113, 1})) }},
		{"Contains v4-mapped", func() { c.Match(netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 203, 15: 1})) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
}
