package storetest

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/usagelog"
)

// testRotation: a rotation changes the hash, keeping the old one as the
// previous secret, and the change feed carries both.
func testRotation(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	k := Key(rand.New(rand.NewPCG(7, 8)), 2)
	_, err := s.CreateKey(ctx, k, "admin-api")
	require.NoError(t, err)
	var want *engine.Key
	c, err := s.UpdateKey(ctx, k.ID, "admin-api", "key.rotate", func(k *engine.Key) error {
		k.Rotate(Time(1_760_000_000, 0), time.Hour)
		want = k.Clone()
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, k.Hash, c.Before.Hash)
	assert.Equal(t, k.Hash, c.After.PrevHash, "the old hash is the previous secret")
	assert.Equal(t, Time(1_760_003_600, 0), c.After.PrevExpiresAt)
	got, err := s.GetKey(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, want, got)
	if h.Reopen != nil {
		s = h.Reopen(t, s)
		t.Cleanup(func() { s.Close() })
		got, err = s.GetKey(ctx, k.ID)
		require.NoError(t, err)
		require.Equal(t, want, got, "a rotated key outlives Close")
	}
}

// testEntryHitsAndTraffic checks EntryHits and Traffic against a count by
// hand over random records of one key.
func testEntryHitsAndTraffic(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	r := rand.New(rand.NewPCG(9, 10))
	base := time.Unix(T0, 0)
	var all []*usagelog.Entry
	for i := range 3000 {
		e := &usagelog.Entry{
			Time:    base.Add(time.Duration(i) * time.Second),
			KeyID:   []string{"key_a", "key_b"}[r.IntN(2)],
			IP:      netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(40))}),
			Method:  []byte("GET"),
			Path:    []byte("/x"),
			Latency: time.Microsecond,
		}
		switch r.IntN(5) {
		case 0, 1:
			e.Status, e.EntryID = 200, []string{"ent_1", "ent_2", "ent_3"}[r.IntN(3)]
		case 2:
			e.Status, e.Code = 403, usagelog.CodeIPNotAllowed
		case 3:
			e.Status, e.Code = 200, usagelog.CodeIPNotAllowed // report-only
		default:
			e.Status, e.Code = 401, "INVALID_KEY"
		}
		if r.IntN(10) == 0 {
			e.IP = netip.MustParseAddr("2001:db8::7")
		}
		s.AppendLog(e)
		all = append(all, e)
	}
	require.NoError(t, s.FlushLogs())
	since := base.Add(1000 * time.Second)

	wantHits := map[string]usagelog.Hits{}
	wantAddrs := map[netip.Addr]usagelog.AddrStat{}
	for _, e := range all {
		if e.KeyID != "key_a" || e.Time.Before(since) {
			continue
		}
		if e.EntryID != "" {
			h := wantHits[e.EntryID]
			h.Count++
			h.LastSeen = time.Unix(0, e.Time.UnixNano()).UTC()
			wantHits[e.EntryID] = h
		}
		if !usagelog.CountsForAllowlist(e.Code) {
			continue
		}
		a, ok := wantAddrs[e.IP]
		if !ok {
			a = usagelog.AddrStat{Addr: e.IP, FirstSeen: time.Unix(0, e.Time.UnixNano()).UTC()}
		}
		a.Requests++
		if e.Code != "" {
			a.Misses++
			if e.Status == 200 {
				a.Reported++
			}
		} else {
			a.EntryID = e.EntryID // the newest allowed one, as records go forward
		}
		a.LastSeen = time.Unix(0, e.Time.UnixNano()).UTC()
		wantAddrs[e.IP] = a
	}
	hits, err := s.EntryHits(ctx, "key_a", since)
	require.NoError(t, err)
	assert.Equal(t, wantHits, hits)
	none, err := s.EntryHits(ctx, "key_absent", since)
	require.NoError(t, err)
	assert.Empty(t, none)

	addrs, truncated, err := s.Traffic(ctx, "key_a", since, usagelog.MaxTrafficAddrs)
	require.NoError(t, err)
	assert.False(t, truncated)
	got := map[netip.Addr]usagelog.AddrStat{}
	for _, a := range addrs {
		got[a.Addr] = a
	}
	assert.Equal(t, wantAddrs, got)

	few, truncated, err := s.Traffic(ctx, "key_a", since, 3)
	require.NoError(t, err)
	assert.True(t, truncated, "more addresses than the limit")
	assert.Len(t, few, 3)
	for _, a := range few {
		assert.Equal(t, wantAddrs[a.Addr], a, "a kept address is counted in full")
	}
}
