package keyset

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
	badgerstore "github.com/keygate/keygate/store/badger"
)

// flaky is a store whose Changes fails the next failChanges times.
type flaky struct {
	store.Store
	mu          sync.Mutex
	failChanges int
}

var errTransient = fmt.Errorf("transient: %w", store.ErrUnavailable)

func (f *flaky) Changes(ctx context.Context, since uint64, limit int) ([]store.Change, error) {
	f.mu.Lock()
	fail := f.failChanges > 0
	if fail {
		f.failChanges--
	}
	f.mu.Unlock()
	if fail {
		return nil, errTransient
	}
	return f.Store.Changes(ctx, since, limit)
}

func (f *flaky) failNext(n int) {
	f.mu.Lock()
	f.failChanges = n
	f.mu.Unlock()
}

func newStore(t *testing.T) *flaky {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.DefaultOptions("").WithInMemory(true))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return &flaky{Store: st}
}

// testKey is a new key with its secret.
func testKey(t *testing.T, name string) (*engine.Key, string) {
	t.Helper()
	secret, hint := engine.NewSecret()
	return &engine.Key{ID: engine.NewKeyID(), Name: name, Hash: engine.HashSecret([]byte(secret)), Hint: hint, CreatedAt: time.Now().UTC()}, secret
}

var ip = netip.MustParseAddr("198.51.100.1")

func decide(s *Set, secret string) engine.Decision {
	return s.Check([]byte(secret), nil, ip, time.Now()).Decision
}

func revoke(t *testing.T, st store.Store, id string) {
	t.Helper()
	_, err := st.UpdateKey(context.Background(), id, "other", "key.revoke", func(k *engine.Key) error {
		k.RevokedAt = k.CreatedAt
		return nil
	})
	require.NoError(t, err)
}

func TestOpenLoads(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	k, secret := testKey(t, "a")
	_, err := st.CreateKey(ctx, k, "t")
	require.NoError(t, err)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), s.Seq())
	assert.Equal(t, 1, s.Snapshot().Len())
	assert.Equal(t, engine.Allow, decide(s, secret))

	require.NoError(t, st.Close())
	_, err = Open(ctx, st)
	require.ErrorIs(t, err, store.ErrClosed)
}

func TestCommitPublishes(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	k, secret := testKey(t, "a")
	ch, err := s.Commit(ctx, func() (store.Change, error) { return st.CreateKey(ctx, k, "t") })
	require.NoError(t, err)
	assert.Equal(t, uint64(1), ch.Seq)
	assert.Equal(t, engine.Allow, decide(s, secret), "live when Commit returns")
	assert.Equal(t, uint64(1), s.Seq())

	boom := errors.New("boom")
	_, err = s.Commit(ctx, func() (store.Change, error) { return store.Change{}, boom })
	require.Equal(t, boom, err, "a write error comes back as it is")
	assert.Equal(t, uint64(1), s.Seq())
}

// TestCommitAppliesTheGap: another writer's change committed in between is
// published with the own one, in order.
func TestCommitAppliesTheGap(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	victim, vsecret := testKey(t, "victim")
	_, err = s.Commit(ctx, func() (store.Change, error) { return st.CreateKey(ctx, victim, "t") })
	require.NoError(t, err)
	revoke(t, st, victim.ID) // seq 2, behind the set's back
	k, secret := testKey(t, "own")
	_, err = s.Commit(ctx, func() (store.Change, error) { return st.CreateKey(ctx, k, "t") })
	require.NoError(t, err)
	assert.Equal(t, uint64(3), s.Seq())
	assert.Equal(t, engine.DenyInvalidKey, decide(s, vsecret))
	assert.Equal(t, engine.Allow, decide(s, secret))
}

// TestCommitNeverSkipsAChange: when another writer committed a change the
// set has not read yet, and reading it fails at the moment of the own
// commit, the own change is still live at once and the other one is still
// applied later: the sequence number must not jump past it (it once did,
// leaving a revoked key allowed until restart).
func TestCommitNeverSkipsAChange(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	victim, vsecret := testKey(t, "victim")
	_, err = s.Commit(ctx, func() (store.Change, error) { return st.CreateKey(ctx, victim, "t") })
	require.NoError(t, err)
	revoke(t, st, victim.ID)
	st.failNext(1)
	k, secret := testKey(t, "own")
	_, err = s.Commit(ctx, func() (store.Change, error) { return st.CreateKey(ctx, k, "t") })
	require.NoError(t, err)
	assert.Equal(t, engine.Allow, decide(s, secret), "own change live at once")
	assert.Equal(t, uint64(1), s.Seq(), "the sequence number stays before the unread change")
	require.NoError(t, s.CatchUp(ctx))
	assert.Equal(t, engine.DenyInvalidKey, decide(s, vsecret), "the other writer's revocation after a catch-up")
	assert.Equal(t, engine.Allow, decide(s, secret), "own change still live after the catch-up")
	assert.Equal(t, uint64(3), s.Seq())
}

func TestCatchUpInBatches(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	for i := range batch + 5 {
		k, _ := testKey(t, fmt.Sprint(i))
		_, err := st.CreateKey(ctx, k, "other")
		require.NoError(t, err)
	}
	st.failNext(1)
	require.ErrorIs(t, s.CatchUp(ctx), errTransient)
	assert.Zero(t, s.Seq())
	require.NoError(t, s.CatchUp(ctx))
	assert.Equal(t, uint64(batch+5), s.Seq())
	assert.Equal(t, batch+5, s.Snapshot().Len())
}

// TestNotifyWakesFollow: a notification catches up at once, long before
// the next tick.
func TestNotifyWakesFollow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := newStore(t)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); s.Follow(ctx, time.Hour, nil) }()
	k, secret := testKey(t, "a")
	_, err = st.CreateKey(ctx, k, "other")
	require.NoError(t, err)
	s.Notify()
	s.Notify() // merged, never blocks
	require.Eventually(t, func() bool { return decide(s, secret) == engine.Allow }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
}

// TestFollowReportsErrors: a failed catch-up is handed to onErr and the
// next tick recovers.
func TestFollowReportsErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := newStore(t)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	k, _ := testKey(t, "a")
	_, err = st.CreateKey(ctx, k, "other")
	require.NoError(t, err)
	st.failNext(1)
	errs := make(chan error, 10)
	done := make(chan struct{})
	go func() { defer close(done); s.Follow(ctx, 5*time.Millisecond, func(err error) { errs <- err }) }()
	require.ErrorIs(t, <-errs, errTransient)
	require.Eventually(t, func() bool { return s.Seq() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
}

// TestConcurrentCommitsAndFollow: commits from many goroutines, other
// writers and a follower at once leave the set at the store's sequence
// number with every key.
func TestConcurrentCommitsAndFollow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := newStore(t)
	s, err := Open(ctx, st)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); s.Follow(ctx, time.Millisecond, nil) }()
	var wg sync.WaitGroup
	secrets := make(chan string, 100)
	for w := range 10 {
		wg.Go(func() {
			for range 5 {
				k, secret := testKey(t, "k")
				if w%2 == 0 {
					_, err := s.Commit(ctx, func() (store.Change, error) { return st.CreateKey(ctx, k, "t") })
					assert.NoError(t, err)
					assert.Equal(t, engine.Allow, decide(s, secret), "own commit live at once")
				} else {
					_, err := st.CreateKey(ctx, k, "other")
					assert.NoError(t, err)
					s.Notify()
				}
				secrets <- secret
			}
		})
	}
	wg.Wait()
	close(secrets)
	require.NoError(t, s.CatchUp(ctx))
	assert.Equal(t, uint64(50), s.Seq())
	for secret := range secrets {
		assert.Equal(t, engine.Allow, decide(s, secret))
	}
	cancel()
	<-done
}

// notifying is a store that announces commits, as a PostgreSQL backend
// with LISTEN/NOTIFY does.
type notifying struct {
	*flaky
	ch chan struct{}
}

func (n notifying) Notifications() <-chan struct{} { return n.ch }

// TestStoreNotificationWakesFollow: a store.Notifier's notification
// catches up at once, and a closed channel leaves polling in charge.
func TestStoreNotificationWakesFollow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := notifying{newStore(t), make(chan struct{}, 1)}
	s, err := Open(ctx, st)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); s.Follow(ctx, time.Hour, nil) }()
	k, secret := testKey(t, "a")
	_, err = st.CreateKey(ctx, k, "other")
	require.NoError(t, err)
	st.ch <- struct{}{}
	require.Eventually(t, func() bool { return decide(s, secret) == engine.Allow }, 5*time.Second, time.Millisecond)
	close(st.ch)
	k2, secret2 := testKey(t, "b")
	_, err = st.CreateKey(ctx, k2, "other")
	require.NoError(t, err)
	s.Notify() // Follow still runs after the channel closed
	require.Eventually(t, func() bool { return decide(s, secret2) == engine.Allow }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
}
