package engine

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on allowlists, fixed by the product contract.
const (
	// MaxEntries is the largest number of allowlist entries one key may have.
	MaxEntries = 20
	// MinPrefixV4 is the shortest IPv4 prefix length accepted (/9).
	MinPrefixV4 = 9
	// MinPrefixV6 is the shortest IPv6 prefix length accepted (/33).
	MinPrefixV6 = 33
	// MaxLabelLen is the longest label accepted, in characters.
	MaxLabelLen = 64
	// maxEntryLen bounds the text of one entry: the longest valid IPv6 CIDR
	// ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128") is 49 bytes.
	maxEntryLen = 64
)

// Entry is one allowlist entry of a key: a canonical prefix, a label, and
// its lifecycle (an expiry, an off switch). An Entry held by a Snapshot is
// immutable.
type Entry struct {
	// ID identifies the entry within its key; stable across edits.
	ID string
	// Prefix is canonical: masked, IPv4 for IPv4 and IPv4-mapped input.
	// A single address is stored as a /32 or /128.
	Prefix netip.Prefix
	// Label is optional printable text of at most MaxLabelLen characters.
	Label string
	// ExpiresAt is when the entry stops matching: from that instant on it
	// matches nothing, without any write (the check knows the time). It
	// stays listed until removed. The zero value means never.
	ExpiresAt time.Time
	// Disabled keeps the entry listed while it matches nothing.
	Disabled bool
}

// Live reports whether the entry matches addresses at time now: not
// disabled, not expired.
func (e *Entry) Live(now time.Time) bool {
	return !e.Disabled && (e.ExpiresAt.IsZero() || now.Before(e.ExpiresAt))
}

// CIDR returns the entry's prefix in its stored text form, e.g.
// "203.0.113.5/32" or "2001:db8::/48".
func (e Entry) CIDR() string { return e.Prefix.String() }

// EntryInput is an allowlist entry as a user typed it.
type EntryInput struct {
	// ID, when set, keeps the identity of an existing entry being edited.
	ID    string `json:"id,omitempty"`
	CIDR  string `json:"cidr"`
	Label string `json:"label"`
	// ExpiresAt, when set, must lie after the time the list is built
	// (unless it is the unchanged expiry of the entry ID names) and at most
	// MaxEntryLifetime after it.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Disabled  bool       `json:"disabled,omitempty"`
}

// Rule names the allowlist rule an entry breaks. The values are stable and
// appear in API error bodies.
type Rule string

// The rules an allowlist entry can break.
const (
	RuleMalformed   Rule = "malformed"
	RuleTooBroad    Rule = "prefix_too_broad"
	RuleHostBits    Rule = "host_bits_set"
	RuleDuplicate   Rule = "duplicate"
	RulePrivate     Rule = "non_public_range"
	RuleTooMany     Rule = "too_many_entries"
	RuleLabel       Rule = "invalid_label"
	RuleDuplicateID Rule = "duplicate_id"
	// RuleUnknownID: an edit names an entry id the key does not have.
	RuleUnknownID Rule = "unknown_id"
	// RuleExpiry: expires_at is in the past or too far ahead.
	RuleExpiry Rule = "invalid_expiry"
)

// MaxEntryLifetime is how far ahead an entry's expires_at may lie.
const MaxEntryLifetime = 10 * 365 * 24 * time.Hour

// EntryError says which entry of a list breaks which rule, and how to fix it.
type EntryError struct {
	// Index is the entry's position in the submitted list (0-based).
	Index int `json:"index"`
	// Input is the entry text as submitted.
	Input string `json:"input"`
	// Rule is the rule broken.
	Rule Rule `json:"rule"`
	// Message explains the problem and how to fix it, in one sentence or two.
	Message string `json:"message"`
	// Suggestion, when set, is a corrected entry the user probably meant.
	Suggestion string `json:"suggestion,omitempty"`
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("entry %d (%q): %s", e.Index+1, e.Input, e.Message)
}

// AllowlistError lists every problem found in an allowlist. Nothing of a list
// that produced an AllowlistError is applied.
type AllowlistError struct {
	Problems []*EntryError
}

func (e *AllowlistError) Error() string {
	var b strings.Builder
	b.WriteString("engine: invalid allowlist: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the individual problems, for errors.As.
func (e *AllowlistError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// Policy holds the settings that change what ParseEntry accepts. The zero
// value is the strict default: only public unicast ranges.
type Policy struct {
	// AllowPrivate accepts private, loopback, link-local, CGNAT and other
	// non-public ranges, for deployments where clients really arrive from
	// such addresses (an internal gateway, tests on loopback).
	AllowPrivate bool
}

// ParseEntry parses one allowlist entry in any of the accepted forms
// (address or CIDR, IPv4 or IPv6) and returns its canonical prefix. The
// returned error is an *EntryError with Index 0 describing what is wrong.
func (p Policy) ParseEntry(s string) (netip.Prefix, error) {
	pfx, e := p.parseEntry(s)
	if e != nil {
		return netip.Prefix{}, e
	}
	return pfx, nil
}

// BuildAllowlist validates a whole list and returns it in canonical form,
// all or nothing: on any problem it returns a nil slice and an
// *AllowlistError naming every bad entry. Entries without an ID get a new
// one from NewEntryID. Expiries are checked against the current time; see
// BuildAllowlistAt.
func (p Policy) BuildAllowlist(in []EntryInput) ([]Entry, error) {
	return p.buildAllowlist(time.Now(), nil, in)
}

// BuildAllowlistAt is BuildAllowlist with the clock given: an expires_at
// must lie after now and at most MaxEntryLifetime after it.
func (p Policy) BuildAllowlistAt(now time.Time, in []EntryInput) ([]Entry, error) {
	return p.buildAllowlist(now, nil, in)
}

// buildAllowlist validates in at time now; an entry keeping the id and the
// expiry of an entry of cur may keep that expiry even if it has passed
// (an expired entry stays listed until removed).
func (p Policy) buildAllowlist(now time.Time, cur []Entry, in []EntryInput) ([]Entry, error) {
	var problems []*EntryError
	if len(in) > MaxEntries {
		problems = append(problems, &EntryError{
			Index:   MaxEntries,
			Input:   in[MaxEntries].CIDR,
			Rule:    RuleTooMany,
			Message: fmt.Sprintf("a key can have at most %d allowlist entries, this list has %d: remove %d, or cover neighbouring addresses with one CIDR range", MaxEntries, len(in), len(in)-MaxEntries),
		})
	}
	out := make([]Entry, 0, len(in))
	seen := make(map[netip.Prefix]int, len(in))
	seenID := make(map[string]int, len(in))
	for i, ei := range in {
		pfx, e := p.parseEntry(ei.CIDR)
		if e != nil {
			e.Index = i
			problems = append(problems, e)
			continue
		}
		if msg := checkLabel(ei.Label); msg != "" {
			problems = append(problems, &EntryError{Index: i, Input: ei.CIDR, Rule: RuleLabel, Message: msg})
			continue
		}
		if j, dup := seen[pfx]; dup {
			problems = append(problems, &EntryError{
				Index: i, Input: ei.CIDR, Rule: RuleDuplicate,
				Message: fmt.Sprintf("%s is already in the list as entry %d (%q): remove one of them", pfx, j+1, in[j].CIDR),
			})
			continue
		}
		if msg := expiryProblem(now, cur, ei); msg != "" {
			problems = append(problems, &EntryError{Index: i, Input: ei.CIDR, Rule: RuleExpiry, Message: msg})
			continue
		}
		seen[pfx] = i
		if ei.ID != "" {
			if j, dup := seenID[ei.ID]; dup {
				problems = append(problems, &EntryError{
					Index: i, Input: ei.CIDR, Rule: RuleDuplicateID,
					Message: fmt.Sprintf("entry id %q is also used by entry %d: each entry needs its own id (leave it empty for a new entry)", ei.ID, j+1),
				})
				continue
			}
			seenID[ei.ID] = i
		}
		ent := Entry{ID: ei.ID, Prefix: pfx, Label: ei.Label, Disabled: ei.Disabled}
		if ei.ExpiresAt != nil {
			ent.ExpiresAt = ei.ExpiresAt.UTC()
		}
		out = append(out, ent)
	}
	if len(problems) > 0 {
		return nil, &AllowlistError{Problems: problems}
	}
	for i := range out {
		if out[i].ID == "" {
			out[i].ID = NewEntryID()
		}
	}
	return out, nil
}

// expiryProblem returns why ei's expires_at is unacceptable at now, or "".
func expiryProblem(now time.Time, cur []Entry, ei EntryInput) string {
	if ei.ExpiresAt == nil {
		return ""
	}
	at := *ei.ExpiresAt
	if ei.ID != "" {
		for _, x := range cur {
			if x.ID == ei.ID && x.ExpiresAt.Equal(at) {
				return "" // unchanged: an expired entry stays listed
			}
		}
	}
	switch {
	case !at.After(now):
		return fmt.Sprintf("expires_at %s is not in the future (now is %s): choose a later time, or remove the entry", at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case at.Sub(now) > MaxEntryLifetime:
		return fmt.Sprintf("expires_at %s is more than 10 years ahead: leave it empty for an entry that never expires", at.UTC().Format(time.RFC3339))
	}
	return ""
}

// checkLabel returns why a label is unacceptable, or "" when it is fine.
func checkLabel(s string) string {
	if !utf8.ValidString(s) {
		return "the label is not valid UTF-8 text"
	}
	if n := utf8.RuneCountInString(s); n > MaxLabelLen {
		return fmt.Sprintf("the label is %d characters long; the limit is %d", n, MaxLabelLen)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("the label contains the non-printable character %U: use plain text", r)
		}
	}
	return ""
}

// parseEntry does the work of ParseEntry; the error's Index is left 0.
func (p Policy) parseEntry(s string) (netip.Prefix, *EntryError) {
	bad := func(rule Rule, msg string) (netip.Prefix, *EntryError) {
		return netip.Prefix{}, &EntryError{Input: s, Rule: rule, Message: msg}
	}
	if s == "" {
		return bad(RuleMalformed, "the entry is empty: enter an IP address (203.0.113.5) or a CIDR range (203.0.113.0/24)")
	}
	if len(s) > maxEntryLen {
		return bad(RuleMalformed, fmt.Sprintf("the entry is %d bytes long, longer than any IP address or CIDR range can be", len(s)))
	}
	if t := strings.TrimSpace(s); t != s {
		return bad(RuleMalformed, fmt.Sprintf("the entry has leading or trailing spaces: enter %q", t))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			return bad(RuleMalformed, "the entry contains spaces: an IP address or CIDR range has none")
		case c == '%':
			return bad(RuleMalformed, "the entry has a zone (the part after %): zones are local to one host and never appear in a request's source address; remove it")
		case c == '[' || c == ']':
			return bad(RuleMalformed, "the entry has brackets: enter the bare IPv6 address, e.g. 2001:db8::1")
		case c < 0x21 || c > 0x7e:
			return bad(RuleMalformed, "the entry contains characters that cannot appear in an IP address")
		}
	}
	addrText, bitsText, hasBits := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrText)
	if err != nil {
		return bad(RuleMalformed, malformedAddrMessage(addrText))
	}
	bits := addr.BitLen()
	if hasBits {
		n, ok := parseBits(bitsText)
		if !ok {
			return bad(RuleMalformed, fmt.Sprintf("the prefix length %q is not a plain decimal number: write it like /24 or /48", "/"+bitsText))
		}
		if n > addr.BitLen() {
			return bad(RuleMalformed, fmt.Sprintf("the prefix length /%d is longer than the %d bits of an IPv%s address", n, addr.BitLen(), family(addr)))
		}
		bits = n
	}
	// An IPv4-mapped IPv6 entry means the IPv4 prefix it carries.
	if addr.Is4In6() {
		if bits < 96 {
			return bad(RuleTooBroad, fmt.Sprintf("the IPv4-mapped range /%d covers far more than IPv4 addresses: IPv4 ranges must be /%d or longer", bits, MinPrefixV4))
		}
		addr = addr.Unmap()
		bits -= 96
	}
	pfx := netip.PrefixFrom(addr, bits)
	if masked := pfx.Masked(); masked.Addr() != addr {
		if e := p.checkPrefix(masked); e != nil {
			// The range the address belongs to is refused too: say why,
			// rather than suggest it.
			return bad(RuleHostBits, fmt.Sprintf("the address has bits set beyond the /%d prefix, and the whole range %s would be refused too: %s", bits, masked, e.Message))
		}
		return netip.Prefix{}, &EntryError{
			Input: s, Rule: RuleHostBits, Suggestion: masked.String(),
			Message: fmt.Sprintf("the address has bits set beyond the /%d prefix: did you mean %s (the whole range) or %s (the single address)?", bits, masked, netip.PrefixFrom(addr, addr.BitLen())),
		}
	}
	if e := p.checkPrefix(pfx); e != nil {
		e.Input = s
		return netip.Prefix{}, e
	}
	return pfx, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "4"
	}
	return "6"
}

// parseBits accepts a plain decimal prefix length without sign or leading
// zeros.
func parseBits(s string) (int, bool) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// malformedAddrMessage explains why text is not an address, naming the
// common mistakes.
func malformedAddrMessage(s string) string {
	switch {
	case strings.Count(s, ":") == 1 && strings.Contains(s, "."):
		return "the entry has a port (:port): enter the address alone"
	case strings.HasPrefix(strings.ToLower(s), "0x") || strings.Contains(strings.ToLower(s), ".0x"):
		return "hexadecimal address forms are not accepted: write the address in dotted decimal, e.g. 203.0.113.5"
	case s == "":
		return "the entry has no address before the /: enter one, e.g. 203.0.113.0/24"
	case strings.Trim(s, "0123456789") == "":
		return "integer address forms are not accepted: write the address in dotted decimal (203.0.113.5) or IPv6 notation (2001:db8::1)"
	case !strings.ContainsAny(s, ".:"):
		return fmt.Sprintf("%q is not an IP address or CIDR range: enter an IPv4 address (203.0.113.5), an IPv6 address (2001:db8::1), or a CIDR range (203.0.113.0/24)", s)
	case !strings.Contains(s, ":") && hasLeadingZeroOctet(s):
		return "an octet has a leading zero (some systems read it as octal): write it without, e.g. 10.1.1.1 instead of 010.1.1.1"
	case !strings.Contains(s, ":") && strings.Count(s, ".") != 3:
		return "an IPv4 address has four dot-separated numbers, e.g. 203.0.113.5"
	}
	return "this is not a valid IP address: enter an IPv4 address (203.0.113.5), an IPv6 address (2001:db8::1), or a CIDR range (203.0.113.0/24)"
}

func hasLeadingZeroOctet(s string) bool {
	for _, part := range strings.Split(s, ".") {
		if len(part) > 1 && part[0] == '0' {
			return true
		}
	}
	return false
}
