package engine

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoadIsPutInOrder: Load (keys compiled in parallel, buckets filled in
// place) makes the snapshot that putting the same keys one by one does,
// also when hashes repeat: a later key with the same hash replaces an
// earlier one, a previous secret's hash may be another key's hash, and
// keys share buckets.
func TestLoadIsPutInOrder(t *testing.T) {
	const n = 5000 // several compile chunks
	keys := make([]*Key, 0, n+40)
	secrets := make([]string, 0, n+40)
	for i := range n {
		k, s := newTestKey(t, []string{"read"}, fmt.Sprintf("203.0.%d.%d/32", i/250, i%250+1))
		if i%3 == 0 {
			k.ReportOnly = true
		}
		keys, secrets = append(keys, k), append(secrets, s)
	}
	for i := range 20 {
		// The same secret again, as another key: it replaces key i.
		k, _ := newTestKey(t, []string{"write"})
		k.Hash = keys[i].Hash
		keys = append(keys, k)
		// A rotated key whose previous secret is key 100+i's current one,
		// and one whose previous secret is its current one.
		r, s := newTestKey(t, nil, "198.51.100.0/24")
		r.PrevHash, r.PrevHint, r.PrevExpiresAt = keys[100+i].Hash, "kg_prev", now.Add(1e9)
		keys, secrets = append(keys, r), append(secrets, s)
		if i%5 == 0 {
			keys[200+i].PrevHash = keys[200+i].Hash
		}
	}
	one := New()
	one.Apply(7, keys, nil)
	all := New()
	all.Load(keys, 7)
	require.Equal(t, one.Snapshot().Len(), all.Snapshot().Len())
	require.Equal(t, uint64(7), all.Snapshot().Seq())
	addrs := []netip.Addr{netip.MustParseAddr("203.0.0.1"), netip.MustParseAddr("203.0.3.7"), netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("2001:db8::1")}
	for i, s := range secrets {
		for _, scope := range []string{"", "read", "write"} {
			for _, a := range addrs {
				w, g := one.Check([]byte(s), []byte(scope), a, now), all.Check([]byte(s), []byte(scope), a, now)
				require.Equal(t, w.Decision, g.Decision, "secret %d scope %q from %s", i, scope, a)
				require.Equal(t, idOf(w.Key), idOf(g.Key), "secret %d", i)
				require.Equal(t, w.Prev, g.Prev)
			}
		}
	}
	var ids []string
	all.Snapshot().Range(func(k *KeyInfo) bool { ids = append(ids, k.ID()); return true })
	var want []string
	one.Snapshot().Range(func(k *KeyInfo) bool { want = append(want, k.ID()); return true })
	require.ElementsMatch(t, want, ids)
}

func idOf(k *KeyInfo) string {
	if k == nil {
		return ""
	}
	return k.ID()
}
