package badgerstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Expired segments leave the disk whole, by bucket. A segment's id is its
// bucket, the Unix second at which a time bucket of bucketWidth starts,
// shifted left by bucketShift, plus a counter within the bucket (ids
// still grow with every segment, so the key order is the write order).
// All segment values of one bucket thus share the key prefix l/ + the
// id's first 5 bytes, and once every segment of a bucket has expired,
// DB.DropPrefix removes the bucket's tables from every level at once.
// Deleting keys one by one would leave their bytes on disk until
// compaction reaches them, which with a steady log took longer than any
// retention: the 14-minute soak grew 1.7 MiB a minute with a 60 s
// retention (RELIABILITY.md).
//
// Segments written by older versions, with ids counted from 0, all fall
// in bucket 0: they are read as before and dropped together once the last
// of them has expired.
const bucketShift = 24

// bucketWidth is the time bucket for a retention: an eighth of it, so
// that disk holds at most about 1/8 more than the retention window,
// between one second and one day.
func bucketWidth(retention time.Duration) int64 {
	return int64(min(max(retention/8, time.Second), 24*time.Hour) / time.Second)
}

// bucketOf is the bucket of a segment sealed at t.
func (s *Store) bucketOf(t time.Time) uint64 {
	w := bucketWidth(s.Retention())
	sec := max(t.Unix(), 0)
	return uint64(sec - sec%w)
}

// expireLogs deletes the index of every segment whose newest record is
// older than Retention at now, oldest first, stopping at the first segment
// still inside the window (segments are written in time order), so that
// queries no longer see them; then it drops the values of every bucket
// older than the oldest live segment and the current time. It returns the
// number of segments expired.
func (s *Store) expireLogs(now time.Time) (int, error) {
	cutoff := now.Add(-s.Retention()).UnixNano()
	var ids []uint64
	// live: the bucket of the oldest segment still inside the window.
	live := s.bucketOf(now)
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefixIndex
		it := txn.NewIterator(opts)
		defer it.Close()
		var x segIndex
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != len(prefixIndex)+8 {
				continue
			}
			if err := item.Value(func(v []byte) error { return decodeIndex(&x, v) }); err != nil {
				return err
			}
			id := binary.BigEndian.Uint64(k[len(prefixIndex):])
			if x.max >= cutoff {
				live = min(live, id>>bucketShift)
				return nil
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		for _, id := range ids {
			if err := wb.Delete(seqKey(prefixIndex, id)); err != nil {
				return 0, fmt.Errorf("store: expire logs: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return 0, fmt.Errorf("store: expire logs: %w", err)
		}
		s.logs.segments.Add(-int64(len(ids)))
	}
	return len(ids), s.dropBuckets(live)
}

// dropBuckets drops the segment values of every bucket before live.
func (s *Store) dropBuckets(live uint64) error {
	var prefixes [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefixSegment
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k := it.Item().Key()
			if len(k) != len(prefixSegment)+8 {
				it.Next()
				continue
			}
			b := binary.BigEndian.Uint64(k[len(prefixSegment):]) >> bucketShift
			if b >= live {
				return nil
			}
			prefixes = append(prefixes, bucketPrefix(b))
			it.Seek(seqKey(prefixSegment, (b+1)<<bucketShift))
		}
		return nil
	})
	if err != nil || len(prefixes) == 0 {
		return err
	}
	// DropPrefix refuses every write while it runs: hold key changes and
	// segment writes back instead.
	s.wmu.Lock()
	s.dropMu.Lock()
	defer s.wmu.Unlock()
	defer s.dropMu.Unlock()
	if err := s.db.DropPrefix(prefixes...); err != nil {
		return fmt.Errorf("store: expire logs: dropping %d buckets: %w", len(prefixes), err)
	}
	return nil
}

// bucketPrefix is the key prefix of bucket b's segment values.
func bucketPrefix(b uint64) []byte {
	return seqKey(prefixSegment, b<<bucketShift)[:len(prefixSegment)+5]
}
