package engine

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScopeProblem(t *testing.T) {
	for _, ok := range []string{"orders:read", "a", "x.y/z-1_2", strings.Repeat("s", MaxScopeLen), "~!#$%&'()*+-./:;<=>?@[]^_`{|}"} {
		assert.Empty(t, ScopeProblem(ok), "ScopeProblem(%q)", ok)
	}
	for _, bad := range []string{"", "a b", "a,b", `a"b`, "tab\t", "é", "\x7f", strings.Repeat("s", MaxScopeLen+1)} {
		assert.NotEmpty(t, ScopeProblem(bad), "ScopeProblem(%q)", bad)
	}
}

func TestCheckScopes(t *testing.T) {
	got, problems := CheckScopes([]string{"b", "a", "b", "", "x y"})
	assert.Equal(t, []string{"b", "a"}, got)
	assert.Equal(t, []string{"scopes[3] is empty", `scopes[4] "x y" may contain only printable ASCII without spaces, commas or quotes (e.g. "orders:read")`}, problems)
	_, problems = CheckScopes(make([]string, MaxScopes+1))
	assert.Contains(t, problems[0], "at most 32 scopes")
}

func TestTextProblems(t *testing.T) {
	for _, tc := range []struct {
		v         string
		required  bool
		multiline bool
		want      string
	}{
		{"ok", true, false, ""},
		{"", true, false, "name is required"},
		{"", false, false, ""},
		{"\xff", false, false, "name is not valid UTF-8 text"},
		{strings.Repeat("é", 11), false, false, "name is 11 characters long; the limit is 10"},
		{"a\nb", false, false, "name contains the non-printable character U+000A"},
		{"a\nb\tc", false, true, ""},
	} {
		got := strings.Join(TextProblems(nil, "name", tc.v, 10, tc.required, tc.multiline), "; ")
		assert.Equal(t, tc.want, got, "TextProblems(%q)", tc.v)
	}
}

func TestMergeEntriesKeepsIDs(t *testing.T) {
	var p Policy
	cur, err := p.BuildAllowlist([]EntryInput{{CIDR: "203.0.113.5"}, {CIDR: "198.51.100.0/24", Label: "dc"}})
	require.NoError(t, err)
	got, err := p.MergeEntries(cur, []EntryInput{
		{CIDR: "198.51.100.0/24", Label: "dc renamed"}, // matched by prefix
		{ID: cur[0].ID, CIDR: "203.0.113.6"},           // kept by id
		{CIDR: "2001:db8::1"},                          // new
	})
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, cur[1].ID, got[0].ID)
	assert.Equal(t, "dc renamed", got[0].Label)
	assert.Equal(t, cur[0].ID, got[1].ID)
	assert.Equal(t, netip.MustParsePrefix("203.0.113.6/32"), got[1].Prefix)
	assert.NotContains(t, []string{cur[0].ID, cur[1].ID}, got[2].ID)

	_, err = p.MergeEntries(cur, []EntryInput{{ID: "ent_unknown", CIDR: "203.0.113.9"}})
	var al *AllowlistError
	require.True(t, errors.As(err, &al), "%v", err)
	assert.Equal(t, RuleUnknownID, al.Problems[0].Rule)
}
