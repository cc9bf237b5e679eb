package badgerstore

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"
)

// TestSegmentStringsByAddress: the writer finds strings and sources by
// address, kept from segment to segment; the same text at other
// addresses must still be one dictionary entry, a segment must hold only
// its own strings, and forgetting them all (past maxKnownStrings) must
// change nothing but speed.
func TestSegmentStringsByAddress(t *testing.T) {
	var g segment
	var sl usagelog.Slot
	ip := netip.MustParseAddr("203.0.113.7")
	addAll := func(keys []string) {
		for _, k := range keys {
			sl.Fill(&usagelog.Entry{KeyID: k, EntryID: strings.Clone("ent_1"), Hint: "kg_" + k, IP: ip, Method: []byte("GET"), Status: 200}, 1)
			g.add(&sl)
		}
	}
	check := func(wantKeys int) {
		t.Helper()
		require.Len(t, g.dicts[dictKey].vals, wantKeys)
		require.Len(t, g.dicts[dictEntry].vals, 1)
		require.Len(t, g.srcs, wantKeys, "one source per key: one address, one entry")
		var d segment
		var buf []byte
		require.NoError(t, decodeSegment(&d, &buf, compress(nil, g.encodeBody(nil, nil), nil)))
		require.Equal(t, records(&g), records(&d))
	}
	a := strings.Clone("key_a")
	addAll([]string{a, strings.Clone("key_a"), a, "key_b", strings.Clone("key_b")})
	check(2)
	g.reset()
	addAll([]string{"key_b", a})
	check(2)
	g.reset()
	addAll([]string{strings.Clone("key_c")})
	check(1)
	require.Equal(t, "key_c", records(&g)[0].KeyID)

	// Past maxKnownStrings everything is forgotten at the next segment.
	r := rand.New(rand.NewPCG(5, 6))
	for round := 0; round < 3; round++ {
		g.reset()
		var keys []string
		for i := range maxKnownStrings/2 + 10 {
			keys = append(keys, fmt.Sprintf("key_%d_%d", round, i))
		}
		addAll(keys)
		addAll([]string{a, "key_b"})
		for range 50 {
			e := storetest.RandEntry(r)
			sl.Fill(e, e.Time.UnixNano())
			g.add(&sl)
		}
		var d segment
		var buf []byte
		require.NoError(t, decodeSegment(&d, &buf, compress(nil, g.encodeBody(nil, nil), nil)))
		require.Equal(t, records(&g), records(&d))
		require.Equal(t, g.n, len(records(&d)))
	}
	require.LessOrEqual(t, len(g.known.srcs), maxKnownStrings+maxKnownStrings/2+100)
}
