package badgerstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keygate/keygate/store"
)

// lockFileName is the lock file in the data directory; Open takes it.
const lockFileName = "keygate.lock"

// Health reports whether management writes can succeed now (see
// store.Health): nil, or store.ErrClosed, store.ErrGone (dirGone) or
// store.ErrNoSpace (checkSpace).
func (s *Store) Health() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.checkSpace()
}

// rememberDir records the data directory and its lock file as Open found
// them, for dirGone.
func (s *Store) rememberDir() error {
	dir, err := os.Stat(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	lock, err := s.lock.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.dirInfo, s.lockInfo = dir, lock
	return nil
}

// dirGone returns an error wrapping store.ErrGone once the data directory
// is no longer the one Open opened: removed, moved or replaced, or its
// lock file removed. Badger keeps writing to its open files, which are
// then lost, and fails forever to create new ones (a memtable flush
// retried every second, which also hangs Close): so every write fails
// from then on, and Close does not wait for Badger (closeWait).
func (s *Store) dirGone() error {
	if s.opts.InMemory || s.dirInfo == nil {
		return nil
	}
	if err := s.gone.Load(); err != nil {
		return *err
	}
	dir, derr := os.Stat(s.opts.Dir)
	lock, lerr := os.Stat(filepath.Join(s.opts.Dir, lockFileName))
	if derr == nil && lerr == nil && os.SameFile(dir, s.dirInfo) && os.SameFile(lock, s.lockInfo) {
		return nil
	}
	err := fmt.Errorf("%w: the data directory %s was removed, moved or replaced while open; nothing more can be saved: restart the daemon on the directory (usage-log records since then are lost)", store.ErrGone, s.opts.Dir)
	if s.gone.CompareAndSwap(nil, &err) {
		s.log.Error("store: data directory gone", "dir", s.opts.Dir)
	}
	return *s.gone.Load()
}

// closeWait bounds how long Close waits for Badger once the data
// directory is gone.
const closeWait = 3 * time.Second

// closeDB closes Badger; with the directory gone, for at most closeWait.
func (s *Store) closeDB() error {
	if s.dirGone() == nil {
		return s.db.Close()
	}
	done := make(chan error, 1)
	go func() { done <- s.db.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(closeWait):
		return errors.Join(*s.gone.Load(), fmt.Errorf("badger did not close within %v (it cannot write its files)", closeWait))
	}
}

// checkTotalSpace refuses a reserve larger than the file system: no write
// could ever succeed.
func checkTotalSpace(dir string, reserve int64) error {
	if reserve <= 0 {
		return nil
	}
	total, err := totalSpace(dir)
	if err != nil || total >= uint64(reserve) {
		return nil
	}
	return fmt.Errorf("store: min-free-space %d bytes is more than the whole file system of %s (%d bytes): no write could ever succeed; lower it (or set it negative to disable the reserve)", reserve, dir, total)
}
