package engine

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyInfoPacking checks that the packed form gives back every string
// it was made from, with entry ids of one width and of mixed widths and
// scopes long enough to need a two-byte length.
func TestKeyInfoPacking(t *testing.T) {
	long := strings.Repeat("s", 200)
	for _, tt := range []struct {
		name string
		ids  []string
	}{
		{"uniform ids", []string{"ent_000000000001", "ent_000000000002", "ent_000000000003"}},
		{"mixed ids", []string{"a", "", strings.Repeat("x", 300), "ent_1"}},
		{"empty ids", []string{"", ""}},
		{"long uniform ids", []string{strings.Repeat("y", 300), strings.Repeat("z", 300)}},
		{"no entries", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &Key{ID: "key_x", Name: "näme", Hint: "kg_AbCdEfGh", PrevHint: "kg_Prev0000", PrevHash: Hash{1},
				Scopes: []string{"read", long, "write"}, ReportOnly: true}
			for i, id := range tt.ids {
				k.Allowlist = append(k.Allowlist, Entry{ID: id, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32)})
			}
			ki := newKeyInfo(k)
			assert.Equal(t, k.ID, ki.ID())
			assert.Equal(t, k.Name, ki.Name())
			assert.Equal(t, k.Hint, ki.Hint())
			assert.Equal(t, k.PrevHint, ki.PrevHint())
			assert.True(t, ki.ReportOnly())
			assert.True(t, ki.HasPrev())
			assert.Equal(t, k.Scopes, slices.Collect(ki.Scopes()))
			for _, sc := range append(k.Scopes, "") {
				assert.True(t, ki.HasScope([]byte(sc)), sc)
			}
			assert.False(t, ki.HasScope([]byte("rea")))
			assert.False(t, ki.HasScope([]byte(long+"s")))
			for i, id := range tt.ids {
				assert.Equal(t, id, ki.EntryID(i), "entry %d", i)
			}
		})
	}
}

// TestKeyInfoTimes checks the conversion of the key's times: zero means
// never (expiry) or already over (previous secret), and instants outside
// int64 nanoseconds saturate instead of wrapping.
func TestKeyInfoTimes(t *testing.T) {
	ki := newKeyInfo(&Key{})
	assert.Equal(t, int64(math.MaxInt64), ki.expires)
	assert.Equal(t, int64(math.MinInt64), ki.prevExpires)
	assert.True(t, ki.active(unixNano(now)))
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	assert.Equal(t, int64(math.MaxInt64), unixNano(far))
	assert.Equal(t, int64(math.MinInt64), unixNano(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)))
	assert.Equal(t, now.UnixNano(), unixNano(now))
	active := func(k *Key, at int64) bool { ki := newKeyInfo(k); return ki.active(at) }
	require.True(t, active(&Key{ExpiresAt: far}, unixNano(now)))
	assert.False(t, active(&Key{ExpiresAt: now}, unixNano(now)))
	assert.True(t, active(&Key{ExpiresAt: now}, unixNano(now)-1))
	assert.False(t, active(&Key{RevokedAt: now.Add(time.Hour)}, unixNano(now)), "revoked whatever the time")
}
