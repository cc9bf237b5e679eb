package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

func testKeysRoundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	r := rand.New(rand.NewPCG(3, 4))
	var want []*engine.Key
	for i := range 50 {
		k := Key(r, 49-i) // created out of CreatedAt order
		c, err := s.CreateKey(ctx, k, "test")
		require.NoError(t, err)
		assert.Equal(t, uint64(i+1), c.Seq)
		assert.Equal(t, store.ActionCreate, c.Action)
		assert.Equal(t, "test", c.Actor)
		assert.Equal(t, k.ID, c.KeyID)
		assert.Nil(t, c.Before)
		assert.Equal(t, k, c.After)
		want = append(want, k)
	}
	_, err := s.CreateKey(ctx, want[3], "test")
	require.ErrorIs(t, err, store.ErrExists)
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = s.GetKey(ctx, "key_nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetKey(ctx, want[10].ID)
	require.NoError(t, err)
	require.Equal(t, want[10], got)
	got.Name = "changed by the caller"
	again, err := s.GetKey(ctx, want[10].ID)
	require.NoError(t, err)
	require.Equal(t, want[10], again, "a returned key is the caller's copy")

	check := func(s store.Store) {
		t.Helper()
		list, err := s.ListKeys(ctx)
		require.NoError(t, err)
		require.Len(t, list, 50)
		for i, k := range list {
			require.Equal(t, want[49-i], k, "ListKeys[%d]: oldest first", i)
		}
		all, seq, err := s.LoadAll(ctx)
		require.NoError(t, err)
		assert.Equal(t, uint64(50), seq)
		assert.ElementsMatch(t, want, all)
	}
	check(s)
	if h.Reopen != nil {
		s = h.Reopen(t, s)
		t.Cleanup(func() { s.Close() })
		check(s)
		cs, err := s.Changes(ctx, 0, 0)
		require.NoError(t, err)
		require.Len(t, cs, 50, "changes outlive Close")
	}
}

func testUpdateKeyAllOrNothing(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	k := Key(rand.New(rand.NewPCG(5, 6)), 8)
	_, err := s.CreateKey(ctx, k, "admin-api")
	require.NoError(t, err)

	boom := errors.New("boom")
	_, err = s.UpdateKey(ctx, k.ID, "admin-api", "", func(k *engine.Key) error {
		k.Name = "changed"
		k.Allowlist = nil
		return boom
	})
	require.Equal(t, boom, err, "fn's error is returned unchanged")
	_, err = s.UpdateKey(ctx, k.ID, "admin-api", "", func(k *engine.Key) error {
		k.Hash[0]++
		return nil
	})
	require.ErrorIs(t, err, store.ErrImmutable)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = s.UpdateKey(ctx, k.ID, "admin-api", "", func(k *engine.Key) error {
		k.PrevHash[0]++ // a "rotation" that does not keep the old hash
		k.Hash[0]++
		return nil
	})
	require.ErrorIs(t, err, store.ErrImmutable)
	_, err = s.UpdateKey(ctx, k.ID, "admin-api", "", func(k *engine.Key) error {
		k.ID = "key_other"
		return nil
	})
	require.ErrorIs(t, err, store.ErrImmutable)
	_, err = s.UpdateKey(ctx, "key_missing", "admin-api", "", func(k *engine.Key) error { return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetKey(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, k, got, "failed updates wrote nothing")
	cs, err := s.Changes(ctx, 0, 0)
	require.NoError(t, err)
	require.Len(t, cs, 1, "failed updates used no sequence number")

	c, err := s.UpdateKey(ctx, k.ID, "cli", "key.revoke", func(k *engine.Key) error {
		k.RevokedAt = Time(1_760_000_000, 0)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), c.Seq)
	assert.Equal(t, "key.revoke", c.Action)
	assert.Equal(t, "cli", c.Actor)
	assert.Equal(t, k, c.Before)
	want := k.Clone()
	want.RevokedAt = Time(1_760_000_000, 0)
	assert.Equal(t, want, c.After)
	got, err = s.GetKey(ctx, k.ID)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	c, err = s.UpdateKey(ctx, k.ID, "cli", "", func(k *engine.Key) error { k.Name = "renamed"; return nil })
	require.NoError(t, err)
	assert.Equal(t, store.ActionUpdate, c.Action, `action "" is key.update`)
	assert.Equal(t, want, c.Before)
}

func testChangesSequence(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	r := rand.New(rand.NewPCG(7, 8))
	var ids []string
	for i := range 20 {
		k := Key(r, i)
		_, err := s.CreateKey(ctx, k, "a")
		require.NoError(t, err)
		ids = append(ids, k.ID)
	}
	for i := range 40 {
		_, err := s.UpdateKey(ctx, ids[i%len(ids)], fmt.Sprint("w", i), "", func(k *engine.Key) error {
			k.Description = fmt.Sprint("update ", i)
			return nil
		})
		require.NoError(t, err)
	}
	all, err := s.Changes(ctx, 0, 1000)
	require.NoError(t, err)
	require.Len(t, all, 60)
	for i, c := range all {
		require.Equal(t, uint64(i+1), c.Seq)
		if i < 20 {
			require.Equal(t, store.ActionCreate, c.Action)
			require.Nil(t, c.Before)
		} else {
			require.Equal(t, store.ActionUpdate, c.Action)
			require.Equal(t, fmt.Sprint("w", i-20), c.Actor)
			require.NotNil(t, c.Before)
			require.Equal(t, c.Before.ID, c.After.ID)
		}
		if i > 0 {
			require.False(t, c.Time.Before(all[i-1].Time), "change times do not go back")
		}
	}
	checkAuditTrail(t, all)
	for _, tc := range []struct{ since, limit, want int }{{0, 10, 10}, {55, 10, 5}, {60, 10, 0}, {100, 10, 0}, {30, 0, 30}} {
		got, err := s.Changes(ctx, uint64(tc.since), tc.limit)
		require.NoError(t, err)
		require.Len(t, got, tc.want, "Changes(%d, %d)", tc.since, tc.limit)
		for i, c := range got {
			require.Equal(t, uint64(tc.since+1+i), c.Seq)
		}
	}
	keys, seq, err := s.LoadAll(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(60), seq)
	last := map[string]*engine.Key{}
	for _, c := range all {
		last[c.KeyID] = c.After
	}
	for _, k := range keys {
		require.Equal(t, last[k.ID], k, "LoadAll reflects every change")
	}
}

// checkAuditTrail: every update's Before is the previous After of the same
// key.
func checkAuditTrail(t *testing.T, all []store.Change) {
	t.Helper()
	last := map[string]*engine.Key{}
	for _, c := range all {
		if c.Before != nil {
			require.Equal(t, last[c.KeyID], c.Before, "seq %d", c.Seq)
		}
		last[c.KeyID] = c.After
	}
}

// testConcurrentWritersGapless: writers creating and updating keys at the
// same time each get their own sequence number, 1..N each exactly once,
// while a reader following the feed sees them in order.
func testConcurrentWritersGapless(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	const writers, per = 8, 15
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*per*2)
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range per {
				k := Key(r, w*1000+i)
				c, err := s.CreateKey(ctx, k, "w")
				if !assert.NoError(t, err) {
					return
				}
				seqs <- c.Seq
				c, err = s.UpdateKey(ctx, k.ID, "w", "", func(k *engine.Key) error { k.Name = "updated"; return nil })
				if !assert.NoError(t, err) {
					return
				}
				seqs <- c.Seq
			}
		})
	}
	done := make(chan struct{})
	var followed []store.Change
	go func() {
		defer close(done)
		var since uint64
		for since < writers*per*2 {
			cs, err := s.Changes(ctx, since, 7)
			if !assert.NoError(t, err) {
				return
			}
			for _, c := range cs {
				if !assert.Equal(t, since+1, c.Seq, "the feed skips no number") {
					return
				}
				since = c.Seq
			}
			followed = append(followed, cs...)
		}
	}()
	wg.Wait()
	close(seqs)
	<-done
	seen := map[uint64]bool{}
	for q := range seqs {
		require.False(t, seen[q], "sequence number %d given twice", q)
		seen[q] = true
	}
	for q := uint64(1); q <= writers*per*2; q++ {
		require.True(t, seen[q], "sequence number %d never given", q)
	}
	require.Len(t, followed, writers*per*2)
	checkAuditTrail(t, followed)
	_, seq, err := s.LoadAll(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(writers*per*2), seq)
}

func testClosedKeys(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	k := Key(rand.New(rand.NewPCG(1, 1)), 1)
	_, err := s.CreateKey(ctx, k, "t")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.GetKey(ctx, k.ID)
	require.ErrorIs(t, err, store.ErrClosed)
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.ListKeys(ctx)
	require.ErrorIs(t, err, store.ErrClosed)
	_, _, err = s.LoadAll(ctx)
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = s.Changes(ctx, 0, 10)
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = s.CreateKey(ctx, Key(rand.New(rand.NewPCG(1, 1)), 2), "t")
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = s.UpdateKey(ctx, k.ID, "t", "", func(*engine.Key) error { return nil })
	require.ErrorIs(t, err, store.ErrClosed)
}

// testKeyVersions: the optimistic concurrency behind If-Match. Every
// change gives the key a new, greater version; UpdateKeyIf with a version
// that is no longer the key's fails with ErrPrecondition and writes
// nothing; version 0 is any version.
func testKeyVersions(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	r := rand.New(rand.NewPCG(31, 32))
	k := Key(r, 1)
	created, err := s.CreateKey(ctx, k, "a")
	require.NoError(t, err)
	require.NotZero(t, created.Version)
	_, v0, err := s.GetKeyVersion(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, created.Version, v0, "GetKeyVersion reads the version the create returned")
	_, err = s.CreateKey(ctx, Key(r, 2), "a") // another key's change
	require.NoError(t, err)
	_, v, err := s.GetKeyVersion(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, v0, v, "another key's change leaves this key's version")

	c1, err := s.UpdateKeyIf(ctx, k.ID, v0, "a", "", func(k *engine.Key) error { k.Name = "first"; return nil })
	require.NoError(t, err)
	require.Greater(t, c1.Version, v0)
	got, v1, err := s.GetKeyVersion(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, c1.Version, v1)
	require.Equal(t, "first", got.Name)

	called := false
	_, err = s.UpdateKeyIf(ctx, k.ID, v0, "b", "", func(k *engine.Key) error { called = true; k.Name = "stale"; return nil })
	require.ErrorIs(t, err, store.ErrPrecondition)
	assert.False(t, called, "fn does not run on a stale version")
	got, v, err = s.GetKeyVersion(ctx, k.ID)
	require.NoError(t, err)
	assert.Equal(t, v1, v)
	assert.Equal(t, "first", got.Name, "a stale update wrote nothing")
	cs, err := s.Changes(ctx, 0, 0)
	require.NoError(t, err)
	require.Len(t, cs, 3, "a stale update used no sequence number")
	assert.Equal(t, c1.Version, cs[2].Version, "Changes carry the version after the change")

	c2, err := s.UpdateKeyIf(ctx, k.ID, 0, "b", "", func(k *engine.Key) error { k.Name = "last wins"; return nil })
	require.NoError(t, err)
	require.Greater(t, c2.Version, c1.Version)
	_, err = s.UpdateKeyIf(ctx, "key_missing", 1, "b", "", func(k *engine.Key) error { return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = s.GetKeyVersion(ctx, "key_missing")
	require.ErrorIs(t, err, store.ErrNotFound)

	if h.Reopen != nil {
		s = h.Reopen(t, s)
		t.Cleanup(func() { s.Close() })
		_, v, err := s.GetKeyVersion(ctx, k.ID)
		require.NoError(t, err)
		require.Equal(t, c2.Version, v, "versions outlive Close")
		_, err = s.UpdateKeyIf(ctx, k.ID, c1.Version, "b", "", func(k *engine.Key) error { return nil })
		require.ErrorIs(t, err, store.ErrPrecondition)
	}
}
