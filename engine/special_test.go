package engine

import (
	"errors"
	"strings"
	"testing"
)

// TestIPv6SpecialRanges: every block of the IANA IPv6 Special-Purpose
// Address Registry that is not globally reachable is refused, its
// reachable exceptions and the documentation ranges are accepted, and the
// forms that carry an IPv4 address say to enter that address. Before,
// 2001:2::/48, Teredo, SRv6 SIDs, 6to4, NAT64 and ::a.b.c.d were stored as
// IPv6 entries that never match.
func TestIPv6SpecialRanges(t *testing.T) {
	for _, in := range []string{
		"100::1", "100:0:0:1::1", "100:0:0:1::/64", "2001::1", "2001:0:4136:e378::1", "2001::/33", "2001:2::1",
		"2001:2::/48", "2001:10::1", "2001:1::4", "2001:1::/64", "2001:4:113::1", "2001:40::1", "2001:1ff::1",
		"5f00::1", "5f00:1::/48", "fec0::1", "fc00::1", "fe80::/64", "ff02::1", "::", "::1",
	} {
		wantRefused(t, Policy{}, in, RulePrivate, "public egress IP", "")
	}
	for _, tt := range []struct{ in, msg, suggestion string }{
		{"::203.0.113.5", "enter 203.0.113.5 itself", "203.0.113.5"},
		{"::cb00:7105", "IPv4-compatible", "203.0.113.5"},
		{"::203.0.113.0/120", "enter 203.0.113.0/24 itself", "203.0.113.0/24"},
		{"::10.0.0.1", "enter the IPv4 address (or range) itself", ""},
		{"::/96", "IPv4-compatible", ""},
		{"64:ff9b::203.0.113.5", "NAT64", "203.0.113.5"},
		{"64:ff9b::cb00:7100/120", "enter 203.0.113.0/24 itself", "203.0.113.0/24"},
		{"64:ff9b::/96", "enter the IPv4 address (or range) itself", ""},
		{"64:ff9b::127.0.0.1", "enter the IPv4 address (or range) itself", ""},
		{"64:ff9b:1::1", "local-use NAT64", ""},
		{"64:ff9b:1:abcd::/64", "enter the IPv4 address (or range) itself", ""},
		{"2002:cb00:7105::/48", "6to4", "203.0.113.5"},
		{"2002:cb00:7105:1::1", "enter 203.0.113.5 itself", "203.0.113.5"},
		{"2002:cb00:7100::/40", "enter 203.0.113.0/24 itself", "203.0.113.0/24"},
		{"2002::/33", "enter the IPv4 address (or range) itself", ""},
		{"2002:a00:1::/48", "enter the IPv4 address (or range) itself", ""},
	} {
		wantRefused(t, Policy{}, tt.in, RulePrivate, tt.msg, tt.suggestion)
	}
	for _, in := range []string{
		"2001:1::1", "2001:1::2", "2001:1::3", "2001:3::1", "2001:3::/33", "2001:4:112::/48", "2001:4:112::1",
		"2001:20::1", "2001:2f::/33", "2001:30::1", "2001:200::1", "2620:4f:8000::/48", "2620:4f:8000::53",
		"2001:db8::1", "2001:db8::/33", "3fff::1", "3fff::/33", "3fff:fff::/48", "64:ff9a::1", "2003::/33",
	} {
		if _, err := (Policy{}).ParseEntry(in); err != nil {
			t.Errorf("ParseEntry(%q): %v, want it accepted (globally reachable or documentation)", in, err)
		}
	}
	// --allow-private-ranges accepts them all, as IPv6 entries: behind a
	// translator the API does see such source addresses.
	for _, in := range []string{"::203.0.113.5", "64:ff9b::203.0.113.5", "2002:cb00:7105::/48", "2001:2::1", "5f00::1", "100:0:0:1::1"} {
		if _, err := (Policy{AllowPrivate: true}).ParseEntry(in); err != nil {
			t.Errorf("AllowPrivate ParseEntry(%q): %v", in, err)
		}
	}
}

// TestHostBitsSuggestionIsAcceptable: a host-bits suggestion that would
// itself be refused is not offered; the message says why instead. Before,
// 1.2.3.4/0 suggested 0.0.0.0/0.
func TestHostBitsSuggestionIsAcceptable(t *testing.T) {
	for _, tt := range []struct{ in, msg string }{
		{"1.2.3.4/0", "the whole range 0.0.0.0/0 would be refused too: /0 is broader than allowed: IPv4 ranges must be /9 or longer"},
		{"203.0.113.0/8", "the whole range 203.0.0.0/8 would be refused too: /8 is broader than allowed: IPv4 ranges must be /9 or longer"},
		{"2001:db8::1/16", "IPv6 ranges must be /33 or longer"},
		{"10.1.2.3/16", "10.1.0.0/16 is in the private range 10.0.0.0/8"},
		{"::ffff:1.2.3.4/100", "IPv4 ranges must be /9 or longer"},
		{"2001:2::1/64", "the benchmarking range 2001:2::/48"},
	} {
		wantRefused(t, Policy{}, tt.in, RuleHostBits, tt.msg, "")
	}
	wantRefused(t, Policy{AllowPrivate: true}, "10.1.2.3/16", RuleHostBits, "did you mean 10.1.0.0/16", "10.1.0.0/16")
	wantRefused(t, Policy{}, "203.0.113.5/24", RuleHostBits, "did you mean 203.0.113.0/24", "203.0.113.0/24")
}

// TestNotAnAddressMessage: text that is no address form at all is not
// blamed on integer forms (issue 20 item 11).
func TestNotAnAddressMessage(t *testing.T) {
	wantRefused(t, Policy{}, "garbage", RuleMalformed, `"garbage" is not an IP address or CIDR range`, "")
	wantRefused(t, Policy{}, "garbage/24", RuleMalformed, `"garbage" is not an IP address or CIDR range`, "")
	wantRefused(t, Policy{}, "/24", RuleMalformed, "no address before the /", "")
	wantRefused(t, Policy{}, "3405803781", RuleMalformed, "integer address forms", "")
	wantRefused(t, Policy{}, "3405803781/32", RuleMalformed, "integer address forms", "")
}

func wantRefused(t *testing.T, p Policy, in string, rule Rule, msg, suggestion string) {
	t.Helper()
	_, err := p.ParseEntry(in)
	var ee *EntryError
	if !errors.As(err, &ee) {
		t.Errorf("ParseEntry(%q): got %v, want a %s error", in, err, rule)
		return
	}
	if ee.Rule != rule || !strings.Contains(ee.Message, msg) || ee.Suggestion != suggestion || ee.Input != in {
		t.Errorf("ParseEntry(%q) = rule %s, message %q, suggestion %q, input %q; want rule %s, a message saying %q, suggestion %q",
			in, ee.Rule, ee.Message, ee.Suggestion, ee.Input, rule, msg, suggestion)
	}
}
