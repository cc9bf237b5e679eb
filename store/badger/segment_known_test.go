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

// TestSegmentPathPrefixes: the writer's cache of path prefixes hashes
// only a prefix's length and its first and last 8 bytes, read from the
// slot's buffer (which keeps the bytes of longer paths and methods
// before). Prefixes alike in those, short ones, none at all, and stale
// bytes past the end must each still be one dictionary entry of their
// own, and every record round-trip.
func TestSegmentPathPrefixes(t *testing.T) {
	var g segment
	var sl usagelog.Slot
	paths := []string{
		"/v1/aaaaaXbbbbbbbb/1", "/v1/aaaaaYbbbbbbbb/2", // same length, first and last 8 bytes
		"/v1/aaaaaXbbbbbbbb/3",
		"/a/1", "/a/22", "/b/1", "/", "x", "", "/v1/orders/9", "/v1/orders/",
		"/a/1", "/b/1", "//", "/v1/aaaaaYbbbbbbbb/4",
	}
	methods := []string{"GET", "OPTIONSX", "POST", "PROPFIND", "GET", "DELETE", "G"}
	want := map[string]bool{}
	for round := range 3 {
		for i, p := range paths {
			// A long path and method first leave stale bytes behind.
			sl.Fill(&usagelog.Entry{Path: []byte("/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz/zz"), Method: []byte("VERYLONGMETHOD")}, 1)
			sl.Fill(&usagelog.Entry{KeyID: "k", Path: []byte(p), Method: []byte(methods[(i+round)%len(methods)]), Status: 200}, int64(i))
			g.add(&sl)
			want[p[:strings.LastIndexByte(p, '/')+1]] = true
		}
	}
	var got []string
	for _, v := range g.prefixes.vals {
		got = append(got, string(v))
	}
	require.Len(t, got, len(want), "prefixes %q", got)
	for _, p := range got {
		require.True(t, want[p], "prefix %q", p)
	}
	require.Len(t, g.dicts[dictMethod].vals, len(methods)-1, "methods") // GET twice
	var d segment
	var buf []byte
	require.NoError(t, decodeSegment(&d, &buf, compress(nil, g.encodeBody(nil, nil), nil)))
	recs := records(&d)
	require.Equal(t, records(&g), recs)
	for i, r := range recs {
		require.Equal(t, paths[i%len(paths)], r.Path)
		require.Equal(t, methods[(i%len(paths)+i/len(paths))%len(methods)], r.Method)
	}
}
