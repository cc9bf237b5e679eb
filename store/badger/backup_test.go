package badgerstore

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var _ store.Backuper = (*Store)(nil)

// TestBackupRestore backs a store up while keys are being created,
// restores the file into a new directory, and finds there every key and
// change that was committed before the backup began, consistently (the
// keys are exactly those the restored change trail created), and the log.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, DefaultOptions(t.TempDir()))
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 50 {
		_, err := s.CreateKey(ctx, storetest.Key(r, i), "t")
		require.NoError(t, err)
	}
	s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: "key_logged", Status: 200})
	before := s.Seq()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		r := rand.New(rand.NewPCG(2, 2))
		for i := 50; !stop.Load(); i++ {
			if _, err := s.CreateKey(ctx, storetest.Key(r, i), "t"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	file := filepath.Join(t.TempDir(), "backup.kgb")
	f, err := os.Create(file)
	require.NoError(t, err)
	require.NoError(t, s.Backup(ctx, f))
	require.NoError(t, f.Close())
	stop.Store(true)
	wg.Wait()

	dir := filepath.Join(t.TempDir(), "restored")
	require.NoError(t, Restore(dir, file))
	rs := openTest(t, DefaultOptions(dir))
	keys, seq, err := rs.LoadAll(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, seq, before)
	assert.Len(t, keys, int(seq), "one key per change: a consistent cut")
	changes, err := rs.Changes(ctx, 0, 100000)
	require.NoError(t, err)
	require.Len(t, changes, int(seq))
	for _, k := range keys {
		orig, err := s.GetKey(ctx, k.ID)
		require.NoError(t, err)
		assert.Equal(t, encodeKey(nil, orig), encodeKey(nil, k))
	}
	got := storetest.Walk(t, rs, usagelog.Filter{KeyID: "key_logged"}, nil)
	assert.Len(t, got, 1)
	// The restored store takes new changes after the restored ones.
	c, err := rs.CreateKey(ctx, storetest.Key(r, 100000), "t")
	require.NoError(t, err)
	assert.Equal(t, seq+1, c.Seq)

	assert.ErrorContains(t, Restore(dir, file), "is not empty")
}

// TestRestoreRefusesDamage: a truncated backup, a flipped byte anywhere, or
// another file is refused, and nothing is written.
func TestRestoreRefusesDamage(t *testing.T) {
	s := openTest(t, DefaultOptions(t.TempDir()))
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 20 {
		_, err := s.CreateKey(context.Background(), storetest.Key(r, i), "t")
		require.NoError(t, err)
	}
	tmp := t.TempDir()
	file := filepath.Join(tmp, "good.kgb")
	f, err := os.Create(file)
	require.NoError(t, err)
	require.NoError(t, s.Backup(context.Background(), f))
	require.NoError(t, f.Close())
	good, err := os.ReadFile(file)
	require.NoError(t, err)
	_, err = VerifyBackup(file)
	require.NoError(t, err)

	cases := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)-1],
		"half":      good[:len(good)/2],
		"no header": good[len(backupMagic):],
		"appended":  append(append([]byte{}, good...), 0),
	}
	for _, at := range []int{0, len(backupMagic) + 3, len(good) / 2, len(good) - 40, len(good) - 1} {
		b := append([]byte{}, good...)
		b[at] ^= 0x01
		cases["flipped byte at "+strconv.Itoa(at)] = b
	}
	for name, b := range cases {
		p := filepath.Join(tmp, "bad.kgb")
		require.NoError(t, os.WriteFile(p, b, 0o600))
		dir := filepath.Join(tmp, "r")
		err := Restore(dir, p)
		require.ErrorIs(t, err, ErrBadBackup, name)
		t.Logf("%s: %v", name, err)
		es, _ := os.ReadDir(dir)
		assert.Empty(t, es, "%s: nothing written", name)
	}
}
