package engine

import (
	"fmt"
	"net/netip"
)

// special is a non-public range that can never be a request's public source.
// A prefix inside one of except is globally reachable after all.
type special struct {
	pfx    netip.Prefix
	name   string
	except []netip.Prefix
}

// specials lists the non-public ranges: RFC 6890 and the IANA IPv4 and
// IPv6 Special-Purpose Address Registries, every block the registry does
// not mark globally reachable (and the ones that only carry an IPv4
// address). The documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, 2001:db8::/32 RFC 3849, 3fff::/20 RFC 9637) are
// deliberately absent: the product's own examples use them, and an entry
// in them only ever fails to match. IPv4-mapped ::ffff:0:0/96 is absent
// because parseEntry reads it as the IPv4 range it carries.
var specials = func() []special {
	list := []struct {
		cidr, name string
		except     []string
	}{
		{"0.0.0.0/8", "the unspecified/\"this network\" range 0.0.0.0/8", nil},
		{"10.0.0.0/8", "the private range 10.0.0.0/8", nil},
		{"100.64.0.0/10", "the carrier-grade NAT range 100.64.0.0/10", nil},
		{"127.0.0.0/8", "the loopback range 127.0.0.0/8", nil},
		{"169.254.0.0/16", "the link-local range 169.254.0.0/16", nil},
		{"172.16.0.0/12", "the private range 172.16.0.0/12", nil},
		{"192.0.0.0/24", "the IETF protocol assignments range 192.0.0.0/24", nil},
		{"192.168.0.0/16", "the private range 192.168.0.0/16", nil},
		{"198.18.0.0/15", "the benchmarking range 198.18.0.0/15", nil},
		{"224.0.0.0/4", "the multicast range 224.0.0.0/4", nil},
		{"240.0.0.0/4", "the reserved range 240.0.0.0/4", nil},
		{"::/128", "the unspecified address ::", nil},                       // RFC 4291
		{"::1/128", "the loopback address ::1", nil},                        // RFC 4291
		{"::/96", "the deprecated IPv4-compatible range ::/96", nil},        // RFC 4291 2.5.5.1
		{"64:ff9b::/96", "the NAT64 range 64:ff9b::/96", nil},               // RFC 6052
		{"64:ff9b:1::/48", "the local-use NAT64 range 64:ff9b:1::/48", nil}, // RFC 8215
		{"100::/64", "the discard-only range 100::/64", nil},                // RFC 6666
		{"100:0:0:1::/64", "the dummy IPv6 prefix 100:0:0:1::/64", nil},     // RFC 9780
		{"2001::/32", "the Teredo range 2001::/32", nil},                    // RFC 4380
		{"2001:2::/48", "the benchmarking range 2001:2::/48", nil},          // RFC 5180
		{"2001:10::/28", "the deprecated ORCHID range 2001:10::/28", nil},   // RFC 4843
		{"2001::/23", "the IETF protocol assignments range 2001::/23", []string{ // RFC 2928
			"2001:1::1/128", "2001:1::2/128", "2001:1::3/128", // PCP RFC 7723, TURN RFC 8155, DNS-SD SRP RFC 9665 anycast
			"2001:3::/32",     // AMT, RFC 7450
			"2001:4:112::/48", // AS112-v6, RFC 7535
			"2001:20::/28",    // ORCHIDv2, RFC 7343
			"2001:30::/28",    // Drone Remote ID HHITs, RFC 9374
		}},
		{"2002::/16", "the 6to4 range 2002::/16", nil},                  // RFC 3056
		{"5f00::/16", "the SRv6 SID range 5f00::/16", nil},              // RFC 9602
		{"fc00::/7", "the unique local (private) range fc00::/7", nil},  // RFC 4193
		{"fe80::/10", "the link-local range fe80::/10", nil},            // RFC 4291
		{"fec0::/10", "the deprecated site-local range fec0::/10", nil}, // RFC 3879
		{"ff00::/8", "the multicast range ff00::/8", nil},               // RFC 4291
	}
	out := make([]special, len(list))
	for i, s := range list {
		out[i] = special{pfx: netip.MustParsePrefix(s.cidr), name: s.name}
		for _, e := range s.except {
			out[i].except = append(out[i].except, netip.MustParsePrefix(e))
		}
	}
	return out
}()

// nonPublic reports whether pfx overlaps a non-public range (other than
// through a globally reachable exception that holds all of pfx), and which.
func nonPublic(pfx netip.Prefix) (string, bool) {
	for _, s := range specials {
		if s.pfx.Overlaps(pfx) && !within(pfx, s.except) {
			return s.name, true
		}
	}
	return "", false
}

// within reports whether pfx lies entirely inside one of list.
func within(pfx netip.Prefix, list []netip.Prefix) bool {
	for _, e := range list {
		if e.Bits() <= pfx.Bits() && e.Contains(pfx.Addr()) {
			return true
		}
	}
	return false
}

// embedding is an IPv6 range whose addresses carry an IPv4 address: a
// client using one reaches the API from that IPv4 address (through a
// NAT64 or 6to4 gateway), so an entry there would never match it.
type embedding struct {
	pfx  netip.Prefix
	name string
	// at is where the IPv4 address sits: its first byte in the IPv6
	// address, or -1 when that depends on the operator's prefix length.
	at int
}

var embeddings = []embedding{
	{netip.MustParsePrefix("::/96"), "the deprecated IPv4-compatible range ::/96", 12},
	{netip.MustParsePrefix("64:ff9b::/96"), "the NAT64 range 64:ff9b::/96", 12},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "the local-use NAT64 range 64:ff9b:1::/48", -1},
	{netip.MustParsePrefix("2002::/16"), "the 6to4 range 2002::/16", 2},
}

// embeddedV4 explains an IPv6 prefix inside a range that embeds IPv4
// addresses and, when the IPv4 prefix it carries is itself acceptable,
// suggests it. :: and ::1 are not IPv4 addresses; nonPublic names them.
func (p Policy) embeddedV4(pfx netip.Prefix) *EntryError {
	if !pfx.Addr().Is6() || pfx.Bits() == 128 && (pfx.Addr() == netip.IPv6Unspecified() || pfx.Addr() == netip.IPv6Loopback()) {
		return nil
	}
	for _, e := range embeddings {
		if !within(pfx, []netip.Prefix{e.pfx}) {
			continue
		}
		ee := &EntryError{Rule: RulePrivate}
		if e.at >= 0 {
			b := pfx.Addr().As16()
			v4bits := min(max(pfx.Bits()-8*e.at, 0), 32)
			v4 := netip.PrefixFrom(netip.AddrFrom4([4]byte(b[e.at:e.at+4])), v4bits).Masked()
			if v4bits > 0 && p.checkPrefix(v4) == nil {
				ee.Suggestion = fmt.Sprint(v4)
				if v4bits == 32 {
					ee.Suggestion = v4.Addr().String()
				}
				ee.Message = fmt.Sprintf("%s is in %s, which carries the IPv4 address %s: the API sees a client using it as that IPv4 address, so enter %s itself", pfx, e.name, ee.Suggestion, ee.Suggestion)
				return ee
			}
		}
		ee.Message = fmt.Sprintf("%s is in %s, whose addresses carry an IPv4 address: the API sees such a client by its IPv4 address, so enter the IPv4 address (or range) itself", pfx, e.name)
		return ee
	}
	return nil
}

// checkPrefix applies the rules a canonical (masked, unmapped) prefix must
// meet: the breadth floors and, unless p.AllowPrivate, public ranges.
func (p Policy) checkPrefix(pfx netip.Prefix) *EntryError {
	addr, bits := pfx.Addr(), pfx.Bits()
	floor := MinPrefixV4
	if addr.Is6() {
		floor = MinPrefixV6
	}
	if bits < floor {
		return &EntryError{Rule: RuleTooBroad, Message: fmt.Sprintf("/%d is broader than allowed: IPv%s ranges must be /%d or longer (narrower); split the range or use your egress IPs", bits, family(addr), floor)}
	}
	if p.AllowPrivate {
		return nil
	}
	if e := p.embeddedV4(pfx); e != nil {
		return e
	}
	if name, blocked := nonPublic(pfx); blocked {
		return &EntryError{Rule: RulePrivate, Message: fmt.Sprintf("%s is in %s: the API sees your public egress IP, so this entry can never match; use the public IP of your NAT gateway or load balancer", pfx, name)}
	}
	return nil
}
