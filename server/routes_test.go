package server

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A route rule that can never match fails open (the requests it was meant
// to guard need no scope), and of two rules with one method and prefix
// only the first ever applies: both are refused, naming the rule and what
// to write instead.
func TestRouteRulesRefused(t *testing.T) {
	tests := []struct {
		name  string
		rules []Route
		want  []string // substrings of the error
	}{
		{"method list", []Route{{Method: "GET,POST", Prefix: "/admin", Scope: "admin"}}, []string{"routes[0]", `"GET,POST"`, "one rule per method"}},
		{"typo GETT", []Route{{Method: "GETT", Prefix: "/admin", Scope: "admin"}}, []string{"routes[0]", `method "GETT" is not an HTTP method`, "GET, HEAD, POST"}},
		{"typo POTS", []Route{{Prefix: "/a", Scope: "a"}, {Method: "POTS", Prefix: "/admin", Scope: "admin"}}, []string{"routes[1]", `"POTS"`}},
		{"dot-segment", []Route{{Prefix: "/a/../b", Scope: "b"}}, []string{`prefix "/a/../b"`, "normalised"}},
		{"final dot", []Route{{Prefix: "/a/.", Scope: "b"}}, []string{`prefix "/a/."`}},
		{"escape", []Route{{Prefix: "/%61pi", Scope: "api"}}, []string{`prefix "/%61pi"`, "decoded"}},
		{"query", []Route{{Prefix: "/q?x=1", Scope: "q"}}, []string{`prefix "/q?x=1"`, `"/q"`}},
		{"fragment", []Route{{Prefix: "/q#x", Scope: "q"}}, []string{`"/q"`}},
		{"empty segment", []Route{{Prefix: "/a//b", Scope: "q"}}, []string{`prefix "/a//b"`}},
		{"backslash", []Route{{Prefix: `/a\b`, Scope: "q"}}, []string{`prefix "/a\\b"`}},
		{"semicolon", []Route{{Prefix: "/a;b", Scope: "q"}}, []string{`prefix "/a;b"`}},
		{"relative", []Route{{Prefix: "admin", Scope: "q"}}, []string{"must start with /"}},
		{"duplicate", []Route{{Prefix: "/ex", Scope: ""}, {Prefix: "/ex", Scope: "ex:read"}}, []string{"routes[1]", "same method and prefix as routes[0]"}},
		{"duplicate any spellings", []Route{{Method: "*", Prefix: "/ex", Scope: "a"}, {Prefix: "/ex", Scope: "b"}}, []string{"routes[1]", "routes[0]"}},
		{"duplicate method case", []Route{{Method: "post", Prefix: "/ex", Scope: "a"}, {Method: "POST", Prefix: "/ex", Scope: "b"}}, []string{"routes[1]"}},
		{"duplicate folded", []Route{{Prefix: "/Ex", Scope: "a", CaseInsensitive: true}, {Prefix: "/ex", Scope: "b"}}, []string{"routes[1]", "routes[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileRoutes(tt.rules)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			cfg := Config{AdminToken: strings.Repeat("x", 20), Routes: tt.rules}
			require.Error(t, cfg.Validate())
		})
	}
}

func TestRouteRulesAccepted(t *testing.T) {
	rules := []Route{
		{Prefix: "/orders", Scope: "orders:read"},
		{Method: "POST", Prefix: "/orders", Scope: "orders:write"},
		{Method: "get", Prefix: "/orders/x", Scope: "orders:read"},
		{Method: "*", Prefix: "/orders/public", Scope: ""},
		{Prefix: "/Ex", Scope: "a"}, {Prefix: "/ex", Scope: "b"}, // case-sensitive: two prefixes
		{Prefix: "/", Scope: "any"},
		{Prefix: "/a.b/c..d/", Scope: "dots"},
	}
	rt, err := compileRoutes(rules)
	require.NoError(t, err)
	assert.Equal(t, "orders:read", string(rt.scopeFor([]byte("GET"), []byte("/orders/x/1"))))
	assert.Equal(t, "orders:write", string(rt.scopeFor([]byte("POST"), []byte("/orders"))))
}

// A trusted-proxy range with host bits set was silently widened (a forged
// X-Forwarded-For from the wider range then passed an allowlist), and a
// range of every address started without a word.
func TestTrustedProxiesRefused(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"127.0.0.5/8", "did you mean 127.0.0.0/8 (the whole range) or 127.0.0.5 (the single address)"},
		{"2001:db8::1/32", "did you mean 2001:db8::/32"},
		{"::ffff:10.1.2.3/104", "did you mean 10.0.0.0/8"},
		{"0.0.0.0/0", "--trust-all-proxies"},
		{"::/0", "--trust-all-proxies"},
	} {
		_, err := parseProxies([]string{tt.in}, false)
		require.Error(t, err, tt.in)
		assert.Contains(t, err.Error(), tt.want, tt.in)
	}
	for _, ok := range []string{"127.0.0.0/8", "10.0.0.1", "2001:db8::/32"} {
		_, err := parseProxies([]string{ok}, false)
		assert.NoError(t, err, ok)
	}
	ps, err := parseProxies([]string{"0.0.0.0/0", "::/0"}, true)
	require.NoError(t, err)
	assert.Len(t, ps.prefixes, 2)
	ps, err = parseProxies([]string{"unix", "10.0.0.1"}, false)
	require.NoError(t, err)
	assert.True(t, ps.unix, "unix names the peers of a unix: listener")
	assert.Len(t, ps.prefixes, 1)
}
