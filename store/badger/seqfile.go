package badgerstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// seqFileName is the file, beside Badger's, that records the sequence
// number of the last acknowledged key change.
//
// Badger replays its write-ahead log only up to the first damaged entry
// and drops the rest without an error. A damaged log would then bring the
// keys back as they were before later changes — a replaced allowlist
// entry or a revoked key allowed again — with nothing to tell. Recording
// the acknowledged sequence number outside that log lets Open notice.
const seqFileName = "keygate.seq"

// openSeqFile opens (creating) the sequence file in dir and returns the
// sequence number it records; 0 when it is new, short or damaged.
func openSeqFile(dir string) (*os.File, uint64, error) {
	f, err := os.OpenFile(filepath.Join(dir, seqFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("store: %w", err)
	}
	var b [12]byte
	if _, err := f.ReadAt(b[:], 0); err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, 0, fmt.Errorf("store: reading %s: %w", seqFileName, err)
	} else if err != nil || crc32.ChecksumIEEE(b[:8]) != binary.BigEndian.Uint32(b[8:]) {
		return f, 0, nil
	}
	return f, binary.BigEndian.Uint64(b[:8]), nil
}

// recordSeq durably records seq as acknowledged. Called after the change
// itself is durable, so the file never runs ahead of the database except
// when the database lost something.
func (s *Store) recordSeq(seq uint64) error {
	if s.seqf == nil {
		return nil
	}
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], seq)
	binary.BigEndian.PutUint32(b[8:], crc32.ChecksumIEEE(b[:8]))
	if _, err := s.seqf.WriteAt(b[:], 0); err != nil {
		return err
	}
	return s.seqf.Sync()
}
