package keyset

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// TestRotationThroughTheFeed: a second key set over the same store learns
// rotations from the change feed alone, in one batch or one by one, and a
// secret two rotations old is gone from it (no stale slot keeps it).
func TestRotationThroughTheFeed(t *testing.T) {
	ctx := context.Background()
	for _, batched := range []bool{false, true} {
		st := newStore(t)
		writer, err := Open(ctx, st)
		require.NoError(t, err)
		k, first := testKey(t, "rotating")
		_, err = writer.Commit(ctx, func() (store.Change, error) { return st.CreateKey(ctx, k.Clone(), "test") })
		require.NoError(t, err)
		reader, err := Open(ctx, st)
		require.NoError(t, err)

		now := time.Now()
		var secrets []string
		rotate := func() {
			_, err := writer.Commit(ctx, func() (store.Change, error) {
				return st.UpdateKey(ctx, k.ID, "test", "key.rotate", func(k *engine.Key) error {
					secrets = append(secrets, k.Rotate(now, time.Hour))
					return nil
				})
			})
			require.NoError(t, err)
			if !batched {
				require.NoError(t, reader.CatchUp(ctx))
			}
		}
		rotate()
		rotate()
		require.NoError(t, reader.CatchUp(ctx))
		a := netip.MustParseAddr("198.51.100.1")
		for _, s := range []*Set{writer, reader} {
			assert.Equal(t, engine.DenyInvalidKey, s.Check([]byte(first), nil, a, now).Decision, "batched=%v: two rotations old", batched)
			assert.Equal(t, engine.Allow, s.Check([]byte(secrets[0]), nil, a, now).Decision, "batched=%v: previous secret in its overlap", batched)
			assert.Equal(t, engine.Allow, s.Check([]byte(secrets[1]), nil, a, now).Decision, "batched=%v: current secret", batched)
			assert.Equal(t, engine.DenyInvalidKey, s.Check([]byte(secrets[0]), nil, a, now.Add(time.Hour)).Decision, "batched=%v: after the overlap", batched)
			assert.Equal(t, 1, s.Snapshot().Len())
		}
	}
}
