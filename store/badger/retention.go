package badgerstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// expireLogs deletes the segments whose newest record is older than
// Retention at now, oldest first, stopping at the first segment still
// inside the window (segments are written in time order). It returns the
// number of segments deleted.
func (s *Store) expireLogs(now time.Time) (int, error) {
	cutoff := now.Add(-s.Retention()).UnixNano()
	var ids []uint64
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
			if x.max >= cutoff {
				return nil
			}
			ids = append(ids, binary.BigEndian.Uint64(k[len(prefixIndex):]))
		}
		return nil
	})
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, id := range ids {
		if err := wb.Delete(seqKey(prefixIndex, id)); err != nil {
			return 0, fmt.Errorf("store: expire logs: %w", err)
		}
		if err := wb.Delete(seqKey(prefixSegment, id)); err != nil {
			return 0, fmt.Errorf("store: expire logs: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("store: expire logs: %w", err)
	}
	s.logs.segments.Add(-int64(len(ids)))
	return len(ids), nil
}
