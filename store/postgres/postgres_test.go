package postgres

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/pgtest"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openURL(t *testing.T, url string, mod func(Options) Options) *Store {
	t.Helper()
	o := DefaultOptions(url).WithNode("node-a").WithFlushInterval(50 * time.Millisecond)
	if mod != nil {
		o = mod(o)
	}
	s, err := Open(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	url := pgtest.Shared(t).DB(t)
	return openURL(t, url, nil), url
}

var testHashN byte

func newKey(id string) *engine.Key {
	testHashN++
	k := &engine.Key{ID: id, Name: "n " + id, Hint: "kg_abc", CreatedAt: time.Unix(1700000000, 123456789).UTC(),
		Scopes: []string{"read", "write"},
		Allowlist: []engine.Entry{
			{ID: "e1", Prefix: netip.MustParsePrefix("203.0.113.0/24"), Label: "office"},
			{ID: "e2", Prefix: netip.MustParsePrefix("2001:db8::/48")},
		}}
	k.Hash[0], k.Hash[1] = testHashN, byte(len(id))
	copy(k.Hash[2:], id)
	return k
}

func TestKeys(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	k := newKey("key_1")
	c, err := s.CreateKey(ctx, k, "admin")
	require.NoError(t, err)
	require.Equal(t, uint64(1), c.Seq)
	require.Nil(t, c.Before)
	require.Equal(t, k, c.After)

	got, v, err := s.GetKeyVersion(ctx, "key_1")
	require.NoError(t, err)
	require.Equal(t, k, got)
	require.Equal(t, uint64(1), v)

	_, err = s.CreateKey(ctx, k, "admin")
	require.ErrorIs(t, err, store.ErrExists)
	_, err = s.GetKey(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.UpdateKey(ctx, "nope", "admin", "", func(*engine.Key) error { return nil })
	require.ErrorIs(t, err, store.ErrNotFound)

	mine := errors.New("mine")
	_, err = s.UpdateKey(ctx, "key_1", "admin", "", func(k *engine.Key) error { k.Name = "x"; return mine })
	require.Equal(t, mine, err, "fn's error unchanged")
	_, err = s.UpdateKey(ctx, "key_1", "admin", "", func(k *engine.Key) error { k.Hash[5]++; return nil })
	require.ErrorIs(t, err, store.ErrImmutable)

	rev := time.Unix(1700000100, 5).UTC()
	c, err = s.UpdateKey(ctx, "key_1", "ops", "key.revoke", func(k *engine.Key) error {
		k.RevokedAt = rev
		k.Allowlist = k.Allowlist[1:]
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, uint64(2), c.Seq)
	require.Equal(t, k, c.Before)
	require.Equal(t, rev, c.After.RevokedAt)

	keys, seq, err := s.LoadAll(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(2), seq)
	require.Len(t, keys, 1)
	require.Equal(t, c.After, keys[0])

	_, err = s.CreateKey(ctx, &engine.Key{ID: "key_0", Hash: engine.Hash{9}, CreatedAt: time.Unix(5, 0).UTC()}, "admin")
	require.NoError(t, err)
	list, err := s.ListKeys(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"key_0", "key_1"}, []string{list[0].ID, list[1].ID})

	ch, err := s.Changes(ctx, 0, 0)
	require.NoError(t, err)
	require.Len(t, ch, 3)
	require.Equal(t, "key.revoke", ch[1].Action)
	require.Equal(t, "ops", ch[1].Actor)
	require.Equal(t, k, ch[1].Before)
	require.Equal(t, c.After, ch[1].After)
	ch, err = s.Changes(ctx, 2, 0)
	require.NoError(t, err)
	require.Len(t, ch, 1)
	require.Equal(t, uint64(3), ch[0].Seq)
}

// TestUpdateKeyIf: a stale version is refused with nothing written;
// without a version the last write wins and both changes are recorded.
func TestUpdateKeyIf(t *testing.T) {
	s, url := openTest(t)
	s2 := openURL(t, url, nil) // a second daemon
	ctx := context.Background()
	_, err := s.CreateKey(ctx, newKey("key_v"), "admin")
	require.NoError(t, err)
	_, v, err := s.GetKeyVersion(ctx, "key_v")
	require.NoError(t, err)

	c2, err := s2.UpdateKeyIf(ctx, "key_v", v, "bob", store.ActionUpdate, func(k *engine.Key) error { k.Name = "bob"; return nil })
	require.NoError(t, err)
	require.Greater(t, c2.Version, v)
	_, err = s.UpdateKeyIf(ctx, "key_v", v, "alice", store.ActionUpdate, func(k *engine.Key) error { k.Name = "alice"; return nil })
	require.ErrorIs(t, err, store.ErrPrecondition)
	got, _ := s.GetKey(ctx, "key_v")
	require.Equal(t, "bob", got.Name)

	// Without versions: both apply, last wins, both in the audit trail.
	_, err = s.UpdateKey(ctx, "key_v", "alice", "", func(k *engine.Key) error { k.Name = "alice"; return nil })
	require.NoError(t, err)
	_, err = s2.UpdateKey(ctx, "key_v", "carol", "", func(k *engine.Key) error { k.Name = "carol"; return nil })
	require.NoError(t, err)
	got, v, _ = s.GetKeyVersion(ctx, "key_v")
	require.Equal(t, "carol", got.Name)
	require.Equal(t, uint64(4), v, "the version is the number of the key's last change")
	ch, err := s.Changes(ctx, 0, 0)
	require.NoError(t, err)
	var actors []string
	for _, c := range ch {
		actors = append(actors, c.Actor)
	}
	require.Equal(t, []string{"admin", "bob", "alice", "carol"}, actors)
}

// TestConcurrentMigrate: ten daemons opening an empty database at once
// migrate it once, and all ten work.
func TestConcurrentMigrate(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	before := migrationsApplied.Load()
	stores := make([]*Store, 10)
	errs := make([]error, 10)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), DefaultOptions(url).WithMaxConns(2))
		}()
	}
	wg.Wait()
	for i, s := range stores {
		require.NoError(t, errs[i])
		t.Cleanup(func() { s.Close() })
	}
	files, _ := migrations.ReadDir("migrations")
	require.Equal(t, int64(len(files)), migrationsApplied.Load()-before, "migrations applied")
	for i, s := range stores {
		_, err := s.CreateKey(context.Background(), newKey("key_m"+string(rune('a'+i))), "admin")
		require.NoError(t, err)
	}
	keys, seq, err := stores[0].LoadAll(context.Background())
	require.NoError(t, err)
	require.Len(t, keys, 10)
	require.Equal(t, uint64(10), seq)
}

func TestListen(t *testing.T) {
	s, url := openTest(t)
	other := openURL(t, url, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan uint64, 16)
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, func(seq uint64) { got <- seq }) }()
	require.Equal(t, uint64(0), <-got, "current number on connect")
	start := time.Now()
	_, err := other.CreateKey(context.Background(), newKey("key_l"), "admin")
	require.NoError(t, err)
	select {
	case seq := <-got:
		require.Equal(t, uint64(1), seq)
		t.Logf("NOTIFY latency from another daemon's commit: %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// TestOpenErrors: each bad URL gives one line saying what to fix, never
// the password.
func TestOpenErrors(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.DB(t)
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	free := srv.Port() + 1 // nothing listens there in practice
	for _, tc := range []struct {
		name, url, want string
	}{
		{"unparsable", "postgres://u:" + pgtest.Password + "@127.0.0.1:notaport/x", "database URL is not valid"},
		{"wrong password", srv.PasswordURL(db, pgtest.Password+"x"), "check the user and password"},
		{"no such database", srv.PasswordURL("nosuchdb", pgtest.Password), `database "nosuchdb" does not exist`},
		{"nothing listening", "postgres://u:" + pgtest.Password + "@127.0.0.1:" + itoa(free) + "/x?connect_timeout=2", "nothing accepts connections at 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), DefaultOptions(tc.url))
			require.Error(t, err)
			msg := err.Error()
			t.Log(msg)
			require.Contains(t, msg, tc.want)
			require.NotContains(t, msg, pgtest.Password)
			require.NotContains(t, msg, "\n")
		})
	}
	s, err := Open(context.Background(), DefaultOptions(srv.PasswordURL(db, pgtest.Password)))
	require.NoError(t, err, "the right password")
	s.Close()
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestClosed: every method after Close fails with store.ErrClosed.
func TestClosed(t *testing.T) {
	s, _ := openTest(t)
	require.NoError(t, s.Close())
	ctx := context.Background()
	_, err := s.CreateKey(ctx, newKey("k"), "a")
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = s.GetKey(ctx, "k")
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = s.QueryLogs(ctx, usagelog.Filter{})
	require.ErrorIs(t, err, store.ErrClosed)
	require.ErrorIs(t, s.FlushLogs(), store.ErrClosed)
	s.AppendLog(&usagelog.Entry{Time: time.Now()})
	require.Equal(t, uint64(1), s.LogStats().Dropped)
}

var _ = pgx.ErrNoRows

// TestNotifications: a change committed by another daemon wakes this
// one's Notifications (the store.Notifier keyset follows).
func TestNotifications(t *testing.T) {
	s, url := openTest(t)
	other := openURL(t, url, nil)
	var _ store.Notifier = s
	var _ store.Health = s
	select { // the value sent on connecting
	case <-s.Notifications():
	case <-time.After(5 * time.Second):
		t.Fatal("no notification on connecting")
	}
	start := time.Now()
	_, err := other.CreateKey(context.Background(), newKey("key_n"), "admin")
	require.NoError(t, err)
	select {
	case <-s.Notifications():
		t.Logf("notified %v after the other daemon's commit", time.Since(start).Round(time.Microsecond))
	case <-time.After(2 * time.Second):
		t.Fatal("no notification within 2 s of another daemon's change")
	}
}

// TestSchemaNewer: a database migrated by a newer keygate is refused with
// a message that says so, and nothing is written to it.
func TestSchemaNewer(t *testing.T) {
	s, url := openTest(t)
	_, err := s.pool.Exec(context.Background(), "INSERT INTO schema_migrations (version, name) VALUES (999, '999_future.sql')")
	require.NoError(t, err)
	_, err = Open(context.Background(), DefaultOptions(url))
	require.ErrorIs(t, err, ErrSchemaNewer)
	require.Contains(t, err.Error(), "version 999")
	require.NotContains(t, err.Error(), "\n")
	t.Log(err)
}
