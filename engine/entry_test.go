package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseEntryAccepts(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"203.0.113.5", "203.0.113.5/32"},
		{"203.0.113.0/24", "203.0.113.0/24"},
		{"198.51.100.0/24", "198.51.100.0/24"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"35.192.0.0/12", "35.192.0.0/12"},
		{"8.0.0.0/9", "8.0.0.0/9"},
		{"8.8.8.8/32", "8.8.8.8/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/48", "2001:db8::/48"},
		{"2001:DB8::/48", "2001:db8::/48"},
		{"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1/128"},
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1/128"},
		{"2600::/33", "2600::/33"},
		{"::ffff:203.0.113.5", "203.0.113.5/32"},
		{"::ffff:203.0.113.0/120", "203.0.113.0/24"},
		{"::ffff:cb00:7105", "203.0.113.5/32"},
	}
	for _, tt := range tests {
		got, err := Policy{}.ParseEntry(tt.in)
		if err != nil {
			t.Errorf("ParseEntry(%q): unexpected error %v", tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParseEntry(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseEntryRejects(t *testing.T) {
	long := strings.Repeat("1", 100)
	tests := []struct {
		in         string
		rule       Rule
		msgHas     string
		suggestion string
	}{
		{"", RuleMalformed, "empty", ""},
		{"010.1.1.1", RuleMalformed, "leading zero", ""},
		{"203.0.113.05", RuleMalformed, "leading zero", ""},
		{"fe80::1%eth0", RuleMalformed, "zone", ""},
		{"2001:db8::1%1/128", RuleMalformed, "zone", ""},
		{"3232235777", RuleMalformed, "integer", ""},
		{"0x7f.1", RuleMalformed, "hexadecimal", ""},
		{"0x7f000001", RuleMalformed, "hexadecimal", ""},
		{"203.0. 113.5", RuleMalformed, "spaces", ""},
		{" 203.0.113.5", RuleMalformed, "leading or trailing", ""},
		{"203.0.113.5\t", RuleMalformed, "leading or trailing", ""},
		{"[::1]", RuleMalformed, "brackets", ""},
		{"[2001:db8::1]:443", RuleMalformed, "brackets", ""},
		{"1.2.3.4:80", RuleMalformed, "port", ""},
		{"203.0.113.0/024", RuleMalformed, "plain decimal", ""},
		{"203.0.113.0/+24", RuleMalformed, "plain decimal", ""},
		{"203.0.113.0/", RuleMalformed, "plain decimal", ""},
		{"203.0.113.0/33", RuleMalformed, "longer than", ""},
		{"2001:db8::/129", RuleMalformed, "longer than", ""},
		{"203.0.113", RuleMalformed, "four", ""},
		{"256.1.1.1", RuleMalformed, "not a valid IP", ""},
		{long, RuleMalformed, "longer than any", ""},
		{"203.0.113.5\x00", RuleMalformed, "characters", ""},
		{"203.0.113.5/24", RuleHostBits, "203.0.113.0/24", "203.0.113.0/24"},
		{"2001:db8::1/48", RuleHostBits, "2001:db8::/48", "2001:db8::/48"},
		{"8.0.0.0/8", RuleTooBroad, "/9", ""},
		{"0.0.0.0/0", RuleTooBroad, "/9", ""},
		{"2600::/32", RuleTooBroad, "/33", ""},
		{"::/0", RuleTooBroad, "/33", ""},
		{"::ffff:0:0/96", RuleTooBroad, "/9", ""},
		{"::ffff:0:0/95", RuleTooBroad, "IPv4-mapped", ""},
	}
	for _, in := range []string{
		"10.0.0.0", "10.1.2.3", "10.0.0.0/9", "172.16.0.0/12", "172.31.255.255", "192.168.1.1", "100.64.0.1",
		"127.0.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255",
		"::1", "::", "fc00::1", "fd12:3456::/48", "fe80::1", "ff02::1", "::ffff:10.0.0.1",
	} {
		tests = append(tests, struct {
			in         string
			rule       Rule
			msgHas     string
			suggestion string
		}{in, RulePrivate, "public egress IP", ""})
	}
	for _, tt := range tests {
		_, err := Policy{}.ParseEntry(tt.in)
		var ee *EntryError
		if !errors.As(err, &ee) {
			t.Errorf("ParseEntry(%q): got error %v, want an *EntryError", tt.in, err)
			continue
		}
		if ee.Rule != tt.rule {
			t.Errorf("ParseEntry(%q): rule %q, want %q (%s)", tt.in, ee.Rule, tt.rule, ee.Message)
		}
		if !strings.Contains(ee.Message, tt.msgHas) {
			t.Errorf("ParseEntry(%q): message %q does not mention %q", tt.in, ee.Message, tt.msgHas)
		}
		if ee.Suggestion != tt.suggestion {
			t.Errorf("ParseEntry(%q): suggestion %q, want %q", tt.in, ee.Suggestion, tt.suggestion)
		}
		if ee.Input != tt.in {
			t.Errorf("ParseEntry(%q): error names input %q", tt.in, ee.Input)
		}
	}
}

func TestParseEntryAllowPrivate(t *testing.T) {
	p := Policy{AllowPrivate: true}
	for _, in := range []string{"10.0.0.0/9", "127.0.0.1", "192.168.0.0/16", "fd00::/33", "::1"} {
		if _, err := p.ParseEntry(in); err != nil {
			t.Errorf("AllowPrivate ParseEntry(%q): %v", in, err)
		}
	}
	// The floors still hold.
	if _, err := p.ParseEntry("10.0.0.0/7"); err == nil {
		t.Errorf("AllowPrivate accepted a /7")
	}
}

func TestBuildAllowlistReportsEveryProblem(t *testing.T) {
	in := []EntryInput{
		{CIDR: "203.0.113.5", Label: "Office"},
		{CIDR: "10.0.0.0"},
		{CIDR: "203.0.113.5/24"},
		{CIDR: "203.0.113.5/32", Label: "dup"},
		{CIDR: "198.51.100.7", Label: "bad\x07label"},
		{CIDR: "198.51.100.8", Label: strings.Repeat("x", 65)},
	}
	got, err := Policy{}.BuildAllowlist(in)
	if got != nil {
		t.Fatalf("BuildAllowlist returned entries %v alongside an error", got)
	}
	var ae *AllowlistError
	if !errors.As(err, &ae) {
		t.Fatalf("BuildAllowlist error %v, want *AllowlistError", err)
	}
	want := []struct {
		index int
		rule  Rule
	}{{1, RulePrivate}, {2, RuleHostBits}, {3, RuleDuplicate}, {4, RuleLabel}, {5, RuleLabel}}
	if len(ae.Problems) != len(want) {
		t.Fatalf("got %d problems (%v), want %d", len(ae.Problems), err, len(want))
	}
	for i, w := range want {
		if p := ae.Problems[i]; p.Index != w.index || p.Rule != w.rule {
			t.Errorf("problem %d: got index %d rule %s, want index %d rule %s", i, p.Index, p.Rule, w.index, w.rule)
		}
	}
	var one *EntryError
	if !errors.As(err, &one) {
		t.Errorf("errors.As(*EntryError) failed on %v", err)
	}
}

func TestBuildAllowlistLimit(t *testing.T) {
	in := make([]EntryInput, MaxEntries+1)
	for i := range in {
		in[i] = EntryInput{CIDR: fmt.Sprintf("203.0.113.%d", i+1)}
	}
	_, err := Policy{}.BuildAllowlist(in)
	var ae *AllowlistError
	if !errors.As(err, &ae) || len(ae.Problems) != 1 || ae.Problems[0].Rule != RuleTooMany || ae.Problems[0].Index != MaxEntries {
		t.Fatalf("21 entries: got %v, want one too_many_entries problem at index 20", err)
	}
	got, err := Policy{}.BuildAllowlist(in[:MaxEntries])
	if err != nil || len(got) != MaxEntries {
		t.Fatalf("20 entries: got %d entries, err %v", len(got), err)
	}
}

func TestBuildAllowlistIDs(t *testing.T) {
	got, err := Policy{}.BuildAllowlist([]EntryInput{
		{ID: "ent_keep", CIDR: "203.0.113.0/24", Label: "Office network"},
		{CIDR: "2001:db8::1", Label: "CI/CD server"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ID != "ent_keep" || got[0].Label != "Office network" || got[0].CIDR() != "203.0.113.0/24" {
		t.Errorf("entry 0 = %+v", got[0])
	}
	if !strings.HasPrefix(got[1].ID, "ent_") || got[1].CIDR() != "2001:db8::1/128" {
		t.Errorf("entry 1 = %+v, want a new ent_ id and 2001:db8::1/128", got[1])
	}
	_, err = Policy{}.BuildAllowlist([]EntryInput{{ID: "ent_x", CIDR: "203.0.113.1"}, {ID: "ent_x", CIDR: "203.0.113.2"}})
	var ae *AllowlistError
	if !errors.As(err, &ae) || ae.Problems[0].Rule != RuleDuplicateID {
		t.Errorf("duplicate ids: got %v, want duplicate_id", err)
	}
}

func TestBuildAllowlistEmpty(t *testing.T) {
	got, err := Policy{}.BuildAllowlist(nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty list: got %v, %v", got, err)
	}
}
