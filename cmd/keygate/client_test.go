package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestEntryWithPrefix: `keygate allowlist remove KEY ADDR` finds the entry
// whatever the spelling of the address (it compared strings and never
// matched 2001:DB8::1 with the stored 2001:db8::1/128).
func TestEntryWithPrefix(t *testing.T) {
	entries := []storedEntry{
		{"ent_v4", "203.0.113.5/32"},
		{"ent_v6", "2001:db8::1/128"},
		{"ent_net", "198.51.100.0/24"},
		{"ent_net6", "2001:db8:1::/48"},
	}
	for _, tc := range []struct{ arg, want string }{
		{"203.0.113.5", "ent_v4"},
		{"203.0.113.5/32", "ent_v4"},
		{"::ffff:203.0.113.5", "ent_v4"},
		{"2001:DB8::1", "ent_v6"},
		{"2001:0db8:0:0::1", "ent_v6"},
		{"2001:db8::1/128", "ent_v6"},
		{"198.51.100.0/24", "ent_net"},
		{"198.51.100.7/24", "ent_net"},
		{"2001:DB8:1::/48", "ent_net6"},
		{"198.51.100.0/25", ""},
		{"203.0.113.6", ""},
		{"not an address", ""},
		{"", ""},
	} {
		assert.Equal(t, tc.want, entryWithPrefix(entries, tc.arg), "entryWithPrefix(%q)", tc.arg)
	}
}
