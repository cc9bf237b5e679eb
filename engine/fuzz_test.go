package engine

import (
	"net/netip"
	"testing"
)

func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"203.0.113.5", "203.0.113.0/24", "2001:db8::1", "2001:db8::/48", "::ffff:203.0.113.5",
		"::ffff:0:0/96", "010.1.1.1", "fe80::1%eth0", "3232235777", "0x7f.1", "1.2.3.4:80",
		"[::1]", "203.0.113.0/024", "203.0.113.0/+8", "203.0.113.5/24", "10.0.0.0", " 1.2.3.4",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, allowPrivate bool) {
		p := Policy{AllowPrivate: allowPrivate}
		pfx, err := p.ParseEntry(s)
		if err != nil {
			if _, ok := err.(*EntryError); !ok {
				t.Fatalf("ParseEntry(%q) error %T, want *EntryError", s, err)
			}
			return
		}
		// Accepted: canonical, re-parses to itself, obeys the floors.
		if pfx != pfx.Masked() {
			t.Fatalf("ParseEntry(%q) = %s, not masked", s, pfx)
		}
		if pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
			t.Fatalf("ParseEntry(%q) = %s, not canonical", s, pfx)
		}
		min := MinPrefixV4
		if pfx.Addr().Is6() {
			min = MinPrefixV6
		}
		if pfx.Bits() < min {
			t.Fatalf("ParseEntry(%q) = %s, broader than the floor", s, pfx)
		}
		again, err := p.ParseEntry(pfx.String())
		if err != nil || again != pfx {
			t.Fatalf("ParseEntry(%q) = %s, which re-parses to %s, %v", s, pfx, again, err)
		}
		if !allowPrivate {
			if _, bad := nonPublic(pfx); bad {
				t.Fatalf("ParseEntry(%q) = %s, a non-public range", s, pfx)
			}
		}
		if std, err := netip.ParsePrefix(pfx.String()); err != nil || std != pfx {
			t.Fatalf("net/netip disagrees on %s: %v %v", pfx, std, err)
		}
	})
}

func FuzzValidSecretFormat(f *testing.F) {
	s, _ := NewSecret()
	f.Add([]byte(s))
	f.Add([]byte("kg_"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ValidSecretFormat(b) && (len(b) != SecretLen || string(b[:3]) != SecretPrefix) {
			t.Fatalf("accepted %q", b)
		}
		if shape, sum := refValidSecretFormat(b); secretShape(b) != shape || ValidSecretFormat(b) != (shape && sum) {
			t.Fatalf("%q: secretShape %v ValidSecretFormat %v, the reference %v %v", b, secretShape(b), ValidSecretFormat(b), shape, shape && sum)
		}
	})
}
