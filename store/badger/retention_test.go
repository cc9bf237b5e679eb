package badgerstore

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allocated is the disk space the files below dir take (st_blocks).
func allocated(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// TestRetentionReturnsSpace: expired usage-log segments leave the disk
// within a few maintenance passes, not when compaction gets round to them.
// Before buckets and DropPrefix, the 24 MiB written here stayed on disk
// (deleted keys in the memtable, its log and its flushed table).
func TestRetentionReturnsSpace(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, DefaultOptions(dir).WithRetention(2*time.Second).
		WithMaintenanceInterval(250*time.Millisecond).WithFlushInterval(50*time.Millisecond).WithMinFreeSpace(-1))
	rng := rand.New(rand.NewPCG(1, 2))
	path := make([]byte, 300)
	const records = 80_000 // ~24 MiB of incompressible paths
	for i := range records {
		for j := range path {
			path[j] = byte(rng.Uint32())
		}
		s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: "key_a", Method: []byte("GET"), Path: path, Status: 200})
		if i%2000 == 0 {
			require.NoError(t, s.FlushLogs())
		}
	}
	require.NoError(t, s.FlushLogs())
	peak := allocated(dir)
	written := time.Now()
	t.Logf("after writing %d records: %.1f MiB on disk", records, float64(peak)/(1<<20))
	require.Greater(t, peak, int64(16<<20))
	deadline := written.Add(20 * time.Second)
	for {
		time.Sleep(250 * time.Millisecond)
		now := allocated(dir)
		if now < 4<<20 {
			t.Logf("%.1f MiB on disk %v after the last write (retention 2 s)", float64(now)/(1<<20), time.Since(written).Round(100*time.Millisecond))
			break
		}
		require.True(t, time.Now().Before(deadline), "still %.1f MiB on disk %v after the last write", float64(now)/(1<<20), time.Since(written))
	}
	assert.Zero(t, s.LogStats().Segments)
	assert.Empty(t, storetest.Walk(t, s, usagelog.Filter{}, nil))
}

// TestOldSegmentLayout: a directory written before buckets (segment ids
// counted from 0) opens, its segments are read in order with the new
// ones, expire as before, and their values are dropped once the last of
// them expired.
func TestOldSegmentLayout(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	opts := DefaultOptions(dir).WithRetention(time.Hour).WithFlushInterval(time.Hour)
	s, err := Open(opts)
	require.NoError(t, err)
	for i, at := range []time.Time{now.Add(-3 * time.Hour), now.Add(-10 * time.Minute)} {
		for j := range 3 {
			s.AppendLog(&usagelog.Entry{Time: at.Add(time.Duration(j)), KeyID: "key_old", Path: []byte{'/', byte('a' + i)}, Status: 200})
		}
		require.NoError(t, s.FlushLogs())
	}
	// Rewrite the two segments under the old ids 0 and 1.
	require.NoError(t, s.db.Update(func(txn *badger.Txn) error {
		for _, prefix := range [][]byte{prefixSegment, prefixIndex} {
			ids := segmentKeys(t, txn, prefix)
			require.Len(t, ids, 2)
			for old, id := range ids {
				item, err := txn.Get(seqKey(prefix, id))
				require.NoError(t, err)
				v, err := item.ValueCopy(nil)
				require.NoError(t, err)
				require.NoError(t, txn.Delete(seqKey(prefix, id)))
				require.NoError(t, txn.Set(seqKey(prefix, uint64(old)), v))
			}
		}
		return nil
	}))
	require.NoError(t, s.Close())

	s = openTest(t, opts)
	assert.Equal(t, 1, s.LogStats().Segments, "the 3-hour-old segment expired at Open")
	s.AppendLog(&usagelog.Entry{Time: now, KeyID: "key_new", Path: []byte("/new"), Status: 200})
	require.NoError(t, s.FlushLogs())
	got := storetest.Walk(t, s, usagelog.Filter{}, nil)
	require.Len(t, got, 4)
	assert.Equal(t, "key_new", got[0].KeyID, "newest first")
	for _, r := range got[1:] {
		assert.Equal(t, "/b", r.Path)
	}
	require.NoError(t, s.db.View(func(txn *badger.Txn) error {
		ids := segmentKeys(t, txn, prefixSegment)
		require.Len(t, ids, 3, "bucket 0 is kept whole while one of its segments is live")
		assert.Equal(t, []uint64{0, 1}, ids[:2])
		assert.Greater(t, ids[2], uint64(1)<<bucketShift)
		return nil
	}))

	_, err = s.expireLogs(now.Add(2 * time.Hour))
	require.NoError(t, err)
	require.NoError(t, s.db.View(func(txn *badger.Txn) error {
		assert.Empty(t, segmentKeys(t, txn, prefixSegment), "every bucket dropped")
		assert.Empty(t, segmentKeys(t, txn, prefixIndex))
		return nil
	}))
	assert.Empty(t, storetest.Walk(t, s, usagelog.Filter{}, nil))
}

// segmentKeys returns the ids stored under prefix, in key order.
func segmentKeys(t *testing.T, txn *badger.Txn, prefix []byte) []uint64 {
	t.Helper()
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var ids []uint64
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		require.True(t, bytes.HasPrefix(k, prefix))
		ids = append(ids, binary.BigEndian.Uint64(k[len(prefix):]))
	}
	return ids
}
