package badgerstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/dgraph-io/badger/v4"
)

// A backup file is a header, Badger's backup stream (DB.Backup: every
// live key at one read timestamp) and a trailer that seals it:
//
//	header:  "KEYGATE-BACKUP\n", byte format version (1), "badger\n"
//	stream:  the bytes of DB.Backup
//	trailer: "KEYGATE-END\n", uint64 big-endian length of the stream,
//	         the SHA-256 of the stream (32 bytes)
//
// A truncated or damaged file fails VerifyBackup, and Restore writes
// nothing from it.
var (
	backupMagic   = []byte("KEYGATE-BACKUP\n\x01badger\n")
	trailerMagic  = []byte("KEYGATE-END\n")
	trailerLength = len(trailerMagic) + 8 + sha256.Size
)

// ErrBadBackup: the file is not a complete keygate backup.
var ErrBadBackup = errors.New("store: not a complete keygate backup")

// Backup writes a consistent backup of the store to w while it serves:
// keys, the change trail, the usage log, as of one moment. It implements
// store.Backuper.
func (s *Store) Backup(ctx context.Context, w io.Writer) error {
	done, err := s.reading(ctx)
	if err != nil {
		return err
	}
	defer done()
	// The records still buffered, too (an error was logged and counted).
	s.FlushLogs()
	if _, err := w.Write(backupMagic); err != nil {
		return err
	}
	sw := &summer{w: w, h: sha256.New()}
	if _, err := s.db.Backup(ctxWriter{ctx, sw}, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	t := append(bytes.Clone(trailerMagic), binary.BigEndian.AppendUint64(nil, uint64(sw.n))...)
	_, err = w.Write(sw.h.Sum(t))
	return err
}

// summer passes writes to w and hashes and counts them.
type summer struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (s *summer) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// ctxWriter ends a backup once its context is done (the client went away,
// the daemon stops).
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// VerifyBackup checks that the file at path is a complete keygate backup:
// header, length and checksum. It returns the length of the stream.
func VerifyBackup(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return verifyBackup(f, path)
}

func verifyBackup(f *os.File, path string) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	bad := func(format string, args ...any) (int64, error) {
		return 0, fmt.Errorf("%w: %s: %s; nothing was restored", ErrBadBackup, path, fmt.Sprintf(format, args...))
	}
	if size < int64(len(backupMagic)+trailerLength) {
		return bad("%d bytes, too short (truncated?)", size)
	}
	head := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, err
	}
	if !bytes.Equal(head, backupMagic) {
		return bad("no keygate backup header (format 1, Badger)")
	}
	trailer := make([]byte, trailerLength)
	if _, err := f.ReadAt(trailer, size-int64(trailerLength)); err != nil {
		return 0, err
	}
	n := int64(binary.BigEndian.Uint64(trailer[len(trailerMagic):]))
	if !bytes.Equal(trailer[:len(trailerMagic)], trailerMagic) || n != size-int64(len(backupMagic)+trailerLength) {
		return bad("the trailer is missing or wrong: the file is truncated or damaged")
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, int64(len(backupMagic)), n)); err != nil {
		return 0, err
	}
	if !bytes.Equal(h.Sum(nil), trailer[len(trailerMagic)+8:]) {
		return bad("the SHA-256 checksum does not match: the file is damaged")
	}
	return n, nil
}

// Restore loads the backup at path into dir, which must be empty or not
// exist, with no daemon on it. The backup is verified whole before
// anything is written; a failed load removes what it wrote.
func Restore(dir, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := verifyBackup(f, path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if len(es) > 0 {
		return fmt.Errorf("store: restore: %s is not empty (%d entries, e.g. %s): restore into a new, empty directory and point --data at it", dir, len(es), es[0].Name())
	}
	if err := load(dir, bufio.NewReaderSize(io.NewSectionReader(f, int64(len(backupMagic)), n), 1<<20)); err != nil {
		clearDir(dir)
		return fmt.Errorf("store: restore into %s: %w", dir, err)
	}
	// Open checks what was restored, as at any start, and sets the modes.
	s, err := Open(DefaultOptions(dir))
	if err != nil {
		clearDir(dir)
		return fmt.Errorf("store: restore into %s: %w", dir, err)
	}
	return s.Close()
}

// load writes Badger's backup stream r into a new database in dir.
func load(dir string, r io.Reader) error {
	db, err := badger.Open(badgerOptions(DefaultOptions(dir).withDefaults()))
	if err != nil {
		return err
	}
	if err := db.Load(r, 256); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// clearDir removes what a failed restore wrote into the (empty) dir.
func clearDir(dir string) {
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		os.RemoveAll(dir + string(os.PathSeparator) + e.Name())
	}
}
