package engine

import (
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on key fields.
const (
	MaxNameLen        = 100
	MaxDescriptionLen = 500
	MaxScopes         = 32
	MaxScopeLen       = 64
)

// TextProblems checks a free-text key field (a name, a description) and
// appends what is wrong with it to problems, naming the field: required
// and empty, not UTF-8, longer than maxLen characters, or holding a
// non-printable character (newlines and tabs are allowed when multiline).
func TextProblems(problems []string, field, v string, maxLen int, required, multiline bool) []string {
	switch {
	case required && v == "":
		return append(problems, field+" is required")
	case !utf8.ValidString(v):
		return append(problems, field+" is not valid UTF-8 text")
	case utf8.RuneCountInString(v) > maxLen:
		return append(problems, fmt.Sprintf("%s is %d characters long; the limit is %d", field, utf8.RuneCountInString(v), maxLen))
	}
	for _, r := range v {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if !unicode.IsPrint(r) && r != ' ' {
			return append(problems, fmt.Sprintf("%s contains the non-printable character %U", field, r))
		}
	}
	return problems
}

// ScopeProblem says what is wrong with scope sc, or "" if it is a valid
// scope: 1 to MaxScopeLen bytes of printable ASCII without spaces, commas
// or quotes (e.g. "orders:read"). It is the one scope syntax: keys'
// scopes, route rules and the CLI are all checked with it.
func ScopeProblem(sc string) string {
	switch {
	case sc == "":
		return "is empty"
	case len(sc) > MaxScopeLen:
		return fmt.Sprintf("is longer than %d characters", MaxScopeLen)
	}
	for j := 0; j < len(sc); j++ {
		if c := sc[j]; c <= ' ' || c >= 0x7f || c == ',' || c == '"' {
			return fmt.Sprintf("%q may contain only printable ASCII without spaces, commas or quotes (e.g. \"orders:read\")", sc)
		}
	}
	return ""
}

// CheckScopes validates a key's scopes and returns them without
// duplicates, in their first order, with what is wrong with them (each
// problem naming scopes[i]).
func CheckScopes(in []string) (scopes, problems []string) {
	if len(in) > MaxScopes {
		problems = append(problems, fmt.Sprintf("a key can have at most %d scopes, not %d", MaxScopes, len(in)))
	}
	scopes = make([]string, 0, len(in))
	for i, sc := range in {
		if p := ScopeProblem(sc); p != "" {
			problems = append(problems, fmt.Sprintf("scopes[%d] %s", i, p))
			continue
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return scopes, problems
}

// MergeEntries validates a new allowlist for a key whose current list is
// cur, and builds it. Entry ids stay stable: an input naming an id keeps
// it (it must be one of cur's, else RuleUnknownID), and an input without
// one that matches an entry of cur by prefix takes that entry's id. in is
// not changed. Expiries are checked against the current time; see
// MergeEntriesAt.
func (p Policy) MergeEntries(cur []Entry, in []EntryInput) ([]Entry, error) {
	return p.MergeEntriesAt(time.Now(), cur, in)
}

// MergeEntriesAt is MergeEntries with the clock given: a new expires_at
// must lie after now (an entry of cur keeping its id and its expiry may
// keep it after it has passed).
func (p Policy) MergeEntriesAt(now time.Time, cur []Entry, in []EntryInput) ([]Entry, error) {
	in = slices.Clone(in)
	used := make(map[string]bool, len(in))
	var problems []*EntryError
	for i, e := range in {
		if e.ID == "" {
			continue
		}
		if !slices.ContainsFunc(cur, func(x Entry) bool { return x.ID == e.ID }) {
			problems = append(problems, &EntryError{Index: i, Input: e.CIDR, Rule: RuleUnknownID,
				Message: fmt.Sprintf("entry id %q is not an entry of this key: leave id empty for a new entry", e.ID)})
			continue
		}
		used[e.ID] = true
	}
	if len(problems) > 0 {
		return nil, &AllowlistError{Problems: problems}
	}
	for i, e := range in {
		if e.ID != "" {
			continue
		}
		pfx, err := p.ParseEntry(e.CIDR)
		if err != nil {
			continue
		}
		for _, x := range cur {
			if x.Prefix == pfx && !used[x.ID] {
				in[i].ID = x.ID
				used[x.ID] = true
				break
			}
		}
	}
	return p.buildAllowlist(now, cur, in)
}
