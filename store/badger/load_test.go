package badgerstore

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/keygate/keygate/store/storetest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
)

// TestLoadAllInParts: LoadAll reads the key range in parts, a goroutine
// each. With keys spread over several tables and the memtable, some
// updated since they were first written, every number of parts returns
// the keys a read in one part does, and the engine built from them in
// parallel (engine.Load) decides a sample of checks as one that put the
// keys one by one.
func TestLoadAllInParts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := DefaultOptions(dir).WithSyncWrites(false).WithMinFreeSpace(-1)
	s, err := Open(opts)
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(9, 9))
	var ids []string
	secrets := map[string][2][]byte{} // id -> secret, previous secret
	create := func(i int) {
		k := storetest.Key(r, i)
		if i%2 == 0 { // ids in order, and at random: tables that overlap
			k.ID = engine.NewKeyID()
		}
		sec, _ := engine.NewSecret()
		prev, _ := engine.NewSecret()
		k.Hash = engine.HashSecret([]byte(sec))
		if k.HasPrev() {
			k.PrevHash = engine.HashSecret([]byte(prev))
		}
		_, err := s.CreateKey(ctx, k, "t")
		require.NoError(t, err)
		ids = append(ids, k.ID)
		secrets[k.ID] = [2][]byte{[]byte(sec), []byte(prev)}
	}
	n := 0
	for round := range 4 {
		for range 1500 {
			create(n)
			n++
		}
		for range 200 { // newer versions of older keys
			id := ids[r.IntN(len(ids))]
			_, err := s.UpdateKey(ctx, id, "t", "", func(k *engine.Key) error {
				k.Name = "updated"
				k.Scopes = append(k.Scopes, "admin")
				if len(k.Allowlist) > 0 {
					k.Allowlist = k.Allowlist[1:]
				}
				return nil
			})
			require.NoError(t, err)
		}
		if round < 3 {
			// Close writes the memtable into a table of its own.
			require.NoError(t, s.Close())
			s, err = Open(opts)
			require.NoError(t, err)
		}
	}
	defer s.Close()
	require.GreaterOrEqual(t, len(s.keyRanges(8)), 4, "several parts")

	want, seq, err := s.loadAll(ctx, 1)
	require.NoError(t, err)
	require.Len(t, want, n)
	wantDigest := digestOf(want)
	var got []*engine.Key
	for _, parts := range []int{2, 3, 8, 64} {
		var gotSeq uint64
		got, gotSeq, err = s.loadAll(ctx, parts)
		require.NoError(t, err)
		assert.Equal(t, seq, gotSeq)
		assert.Equal(t, wantDigest, digestOf(got), "%d parts", parts)
	}

	one := engine.New()
	one.Apply(seq, want, nil) // one key after the other
	par := engine.New()
	par.Load(got, seq)
	require.Equal(t, one.Snapshot().Len(), par.Snapshot().Len())
	addrs := []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8:1::9")}
	for j := range 4 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{203, 0, 113, byte(j)}))
	}
	times := []time.Time{time.Now(), storetest.Time(1_900_000_001, 0), storetest.Time(1_860_000_000, 0)}
	checks := 0
	for i := 0; i < len(ids); i += 7 {
		sec := secrets[ids[i]]
		for _, secret := range sec {
			for _, scope := range []string{"", "read", "admin"} {
				for _, a := range addrs {
					for _, now := range times {
						w := one.Check(secret, []byte(scope), a, now)
						g := par.Check(secret, []byte(scope), a, now)
						require.Equal(t, describe(w), describe(g), "key %s scope %q from %s at %s", ids[i], scope, a, now)
						checks++
					}
				}
			}
		}
	}
	t.Logf("%d keys in %d parts at most; %d checks alike", n, len(s.keyRanges(8))-1, checks)
}

// describe is what a check decided, comparable across engines.
func describe(r engine.Result) [4]string {
	d := [4]string{r.Decision.String()}
	if r.Key != nil {
		d[1] = r.Key.ID()
	}
	d[2] = r.EntryID()
	if r.Prev {
		d[3] = "prev"
	}
	return d
}
