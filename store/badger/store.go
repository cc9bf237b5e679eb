// Package store is keygate's persistence: API keys with their allowlists,
// the audit trail of every change to them, and the usage log of every check,
// all kept in one embedded Badger database in one data directory.
//
// # Durability
//
// Every key change (CreateKey, UpdateKey, UpdateKeyAction) is one Badger
// transaction: it is applied entirely or not at all. With
// Options.SyncWrites (the default from DefaultOptions) the write-ahead log
// is fsync'd before the method returns, so a change that was acknowledged
// survives kill -9 and a power cut. A method that returned an error wrote
// nothing.
//
// Usage-log records are not written synchronously: they wait in a bounded
// in-memory buffer and are written in compressed segments at least every
// Options.FlushInterval, without fsync. A crash can lose the records of
// the last moments; Close and FlushLogs write every buffered record.
// Records that do not fit in the buffer are dropped and counted
// (usagelog.Stats.Dropped), never waited for.
//
// # Damage and a full disk
//
// Open verifies the tables' checksums itself, before Badger opens them
// (so that a damaged table is store.ErrCorrupt naming the file, never a
// panic in one of Badger's goroutines), and compares the change sequence
// with the one recorded outside Badger (keygate.seq) after each
// acknowledged change: damaged data, or a write-ahead log that lost
// acknowledged changes, is store.ErrCorrupt rather than older keys served
// quietly. Tables that hold nothing but usage-log segments are verified
// in the background while the store serves.
//
// # Retention
//
// Log segments are grouped in time buckets (an eighth of the retention,
// between a second and a day; see retention.go): an expired bucket is
// dropped whole (DB.DropPrefix), so its space returns within a
// maintenance interval or two rather than when compaction reaches it.
//
// # Backups
//
// Backup writes a consistent online backup (implementing store.Backuper);
// Restore loads one into an empty directory. Below Options.MinFreeSpace of free disk space nothing is
// written: key changes fail with store.ErrNoSpace and log records are counted
// as write errors, until space returns.
//
// # store.Change sequence
//
// Every key change gets the next number of one monotonically increasing
// sequence, stored with the change in the same transaction. Changes(since)
// returns what changed after a given number, which is how a daemon that
// loaded the keys at sequence N catches up, and is the audit trail: who
// (actor), when, and the key before and after.
//
// A Store is safe for concurrent use. Only one process may open a data
// directory at a time; Open reports store.ErrLocked to the second.
package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/store"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Defaults for the zero values of Options fields.
const (
	DefaultLogBuffer      = 1 << 16
	DefaultSegmentRecords = 16384
	DefaultFlushInterval  = time.Second
	DefaultRetention      = 30 * 24 * time.Hour
	DefaultMinFreeSpace   = 64 << 20
)

// memTableSize is Badger's memtable size. keygate writes little at a
// time (keys, log segments of ~150 KB), and with Badger's default of 64 MiB a
// steady usage log at 3,900 checks/s took about 35 minutes to fill the
// first memtable, memory and the write-ahead log growing all along; 16 MiB
// bounds both four times sooner.
const memTableSize = 16 << 20

// DefaultMaintenanceInterval is how often, by default, expired log
// segments are removed and Badger's value log is garbage-collected.
const DefaultMaintenanceInterval = 10 * time.Minute

// Options configure a Store. Zero values of the fields mean the defaults;
// build them with DefaultOptions and the WithX methods, each of which
// returns a changed copy.
type Options struct {
	// Dir is the data directory, created if missing. Required unless
	// InMemory.
	Dir string
	// InMemory keeps everything in memory and nothing on disk; for tests.
	InMemory bool
	// SyncWrites makes key changes durable (fsync) before they return.
	// DefaultOptions sets it; the zero Options does not.
	SyncWrites bool
	// LogBuffer is the usage-log buffer capacity in records (default
	// 1<<16). Records arriving while it is full are dropped and counted.
	LogBuffer int
	// SegmentRecords is the number of records per log segment (default
	// 16384: a segment stores its keys, entries, hints and client
	// addresses once, which per record costs a quarter of what it did at
	// 4096, in bytes and in the writer's CPU; a query decodes each
	// segment whose index names its key, so more records per segment
	// make a rare key's query read more).
	SegmentRecords int
	// FlushInterval is the longest a record waits before its segment is
	// written (default 1s).
	FlushInterval time.Duration
	// Retention is the age after which log segments expire (default 30
	// days).
	Retention time.Duration
	// MaintenanceInterval is how often retention and value-log GC run
	// (default DefaultMaintenanceInterval).
	MaintenanceInterval time.Duration
	// MinFreeSpace is the free space, in bytes, that the file system
	// holding Dir must keep: below it, key changes fail with store.ErrNoSpace and
	// usage-log segments are not written (their records are counted in
	// usagelog.Stats.WriteErrors), until space returns. Default 64 MiB; negative
	// disables the check.
	//
	// The reserve is what keeps a full disk from killing the process:
	// Badger writes through memory-mapped, sparsely allocated files, and
	// touching a page the file system cannot back is a SIGBUS, not an
	// error. It should exceed the largest write Badger makes at once (a
	// memtable flush, memTableSize).
	MinFreeSpace int64
	// Logger receives the store's and Badger's messages (default: none).
	Logger *slog.Logger
	// Node names this daemon in the usage-log records queries return. One
	// daemon owns a Badger directory, so records do not store it: they
	// carry the node of the store that reads them.
	Node string
}

// DefaultOptions returns the options for a durable store in dir.
func DefaultOptions(dir string) Options {
	return Options{Dir: dir, SyncWrites: true}
}

// WithDir returns a copy of o with Dir set.
func (o Options) WithDir(dir string) Options { o.Dir = dir; return o }

// WithInMemory returns a copy of o with InMemory set.
func (o Options) WithInMemory(v bool) Options { o.InMemory = v; return o }

// WithSyncWrites returns a copy of o with SyncWrites set.
func (o Options) WithSyncWrites(v bool) Options { o.SyncWrites = v; return o }

// WithLogBuffer returns a copy of o with LogBuffer set.
func (o Options) WithLogBuffer(n int) Options { o.LogBuffer = n; return o }

// WithSegmentRecords returns a copy of o with SegmentRecords set.
func (o Options) WithSegmentRecords(n int) Options { o.SegmentRecords = n; return o }

// WithFlushInterval returns a copy of o with FlushInterval set.
func (o Options) WithFlushInterval(d time.Duration) Options { o.FlushInterval = d; return o }

// WithRetention returns a copy of o with Retention set.
func (o Options) WithRetention(d time.Duration) Options { o.Retention = d; return o }

// WithMaintenanceInterval returns a copy of o with MaintenanceInterval set.
func (o Options) WithMaintenanceInterval(d time.Duration) Options {
	o.MaintenanceInterval = d
	return o
}

// WithMinFreeSpace returns a copy of o with MinFreeSpace set.
func (o Options) WithMinFreeSpace(n int64) Options { o.MinFreeSpace = n; return o }

// WithNode returns a copy of o with Node set.
func (o Options) WithNode(n string) Options { o.Node = n; return o }

// WithLogger returns a copy of o with Logger set.
func (o Options) WithLogger(l *slog.Logger) Options { o.Logger = l; return o }

// Validate reports the first invalid field of o.
func (o Options) Validate() error {
	switch {
	case o.Dir == "" && !o.InMemory:
		return errors.New("store: options: Dir is required unless InMemory")
	case o.LogBuffer < 0:
		return errors.New("store: options: LogBuffer must not be negative")
	case o.SegmentRecords < 0 || o.SegmentRecords > maxSegmentRecords:
		return fmt.Errorf("store: options: SegmentRecords must be between 0 and %d", maxSegmentRecords)
	case o.FlushInterval < 0:
		return errors.New("store: options: FlushInterval must not be negative")
	case o.Retention < 0:
		return errors.New("store: options: Retention must not be negative")
	case o.MaintenanceInterval < 0:
		return errors.New("store: options: MaintenanceInterval must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.LogBuffer == 0 {
		o.LogBuffer = DefaultLogBuffer
	}
	if o.SegmentRecords == 0 {
		o.SegmentRecords = DefaultSegmentRecords
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = DefaultMaintenanceInterval
	}
	if o.MinFreeSpace == 0 {
		o.MinFreeSpace = DefaultMinFreeSpace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// checkSpace reports store.ErrNoSpace when the data directory's file system has
// less free space than the reserve. When free space cannot be read, it lets
// the write go ahead.
func (s *Store) checkSpace() error {
	if err := s.dirGone(); err != nil {
		return err
	}
	if s.opts.InMemory || s.opts.MinFreeSpace < 0 {
		return nil
	}
	free, err := freeSpace(s.opts.Dir)
	if err != nil || free >= uint64(s.opts.MinFreeSpace) {
		return nil
	}
	return fmt.Errorf("%w: %d bytes free on the file system of %s, %d kept in reserve; free some space (nothing was written)",
		store.ErrNoSpace, free, s.opts.Dir, s.opts.MinFreeSpace)
}

// Store is an open data directory. It is safe for concurrent use.
type Store struct {
	opts Options
	db   *badger.DB
	lock *os.File // flock'd lock file; nil in memory
	// seqf records the last acknowledged change (see seqFileName); nil
	// in memory or without SyncWrites.
	seqf *os.File
	log  *slog.Logger

	// wmu serialises key changes so that sequence numbers are assigned
	// and committed in order.
	wmu sync.Mutex
	seq atomic.Uint64
	// rmu is held shared by reads, so that Close waits for them.
	rmu sync.RWMutex
	// dropMu is held by the log writer around each segment write and,
	// with wmu, by expireLogs around DB.DropPrefix, which refuses every
	// write while it runs (badger.ErrBlockedWrites).
	dropMu sync.Mutex

	logs logWriter
	// dirInfo and lockInfo are the data directory and its lock file as
	// opened; gone is set once they are not there any more (dirGone).
	dirInfo, lockInfo os.FileInfo
	gone              atomic.Pointer[error]
	// retention is opts.Retention, changed by SetRetention.
	retention atomic.Int64
	// verifyLogs are the usage-log tables whose blocks Open left to check
	// while serving (verifyTableFiles).
	verifyLogs []string
	// keySplits are keys in the key range, sorted, where LoadAll may
	// split it (verifyTableFiles); they date from Open.
	keySplits [][]byte
	// servingCh is closed by Serving (serving closes it once).
	servingCh chan struct{}
	serving   func()
	openTimes OpenTimes

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
	wg        sync.WaitGroup
}

// Open opens (creating if needed) the store described by opts. If another
// process has the directory open, the error wraps store.ErrLocked. Files in
// the directory are made 0600 and directories below it 0700 (see
// privateModes), again at each maintenance pass and at Close.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Store{opts: opts, log: opts.Logger, stop: make(chan struct{}), servingCh: make(chan struct{})}
	s.serving = sync.OnceFunc(func() { close(s.servingCh) })
	s.retention.Store(int64(opts.Retention))
	if err := s.open(); err != nil {
		// Whatever open got as far as taking is given back here, once.
		if s.db != nil {
			s.db.Close()
		}
		s.unlock()
		return nil, err
	}
	s.logs.init(s)
	// The start-up retention pass runs here rather than in maintain, so
	// that it is over before Open returns and never races the caller's
	// first writes.
	s.expire(time.Now())
	s.wg.Add(3)
	go s.logs.run()
	go s.maintain()
	go s.later()
	return s, nil
}

// laterDelay is how long the background work Open puts off (reading the
// last-used times, verifying the usage-log tables) waits for Serving
// before it begins anyway.
const laterDelay = 30 * time.Second

// Serving tells the store that its owner has loaded the keys and serves:
// the background work Open put off, reading the last-used times and
// verifying the usage-log tables, begins now (else laterDelay after
// Open). On two cores that work took CPU from loading the keys, which is
// what a daemon's start waits for (1.1 s of CPU at 1M keys). Calls after
// the first do nothing.
func (s *Store) Serving() { s.serving() }

// later runs the work Open put off, once Serving is called or laterDelay
// has passed.
func (s *Store) later() {
	defer s.wg.Done()
	select {
	case <-s.servingCh:
	case <-time.After(laterDelay):
	case <-s.stop:
		return
	}
	// Still counted in s.wg here, so Close waits for these too.
	s.wg.Add(2)
	go s.logs.loadLastUsed()
	go s.verifyLater(s.verifyLogs)
}

// OpenTimes is how long Open took, part by part.
type OpenTimes struct {
	// Verify is checking the tables' checksums, Open badger.Open and
	// State reading the stored state (sequence, segment counters).
	Verify, Open, State time.Duration
}

// OpenTimes returns how long Open took, part by part.
func (s *Store) OpenTimes() OpenTimes { return s.openTimes }

// open takes the directory lock, opens Badger and checks what it holds:
// the tables' checksums, the stored state, and the acknowledged change
// sequence. On error, Open releases what open took (s.db, the lock).
func (s *Store) open() error {
	opts := s.opts
	if !opts.InMemory {
		if err := s.takeDir(); err != nil {
			return err
		}
	}
	bopts := badgerOptions(opts)
	began := time.Now()
	if !opts.InMemory {
		later, splits, err := verifyTableFiles(opts.Dir, bopts)
		if err != nil {
			return err
		}
		s.verifyLogs, s.keySplits = later, splits
	}
	s.openTimes.Verify = time.Since(began)
	began = time.Now()
	db, err := badger.Open(bopts)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	s.db = db
	s.openTimes.Open = time.Since(began)
	if !opts.InMemory {
		// The files Badger has just created.
		if err := privateModes(opts.Dir); err != nil {
			return err
		}
	}
	began = time.Now()
	if err := s.loadState(); err != nil {
		return err
	}
	s.openTimes.State = time.Since(began)
	if !opts.InMemory && opts.SyncWrites {
		return s.checkAcknowledged()
	}
	return nil
}

// badgerOptions is how keygate runs Badger. Tables stay
// Snappy-compressed (Badger's default): written uncompressed, the 1M-key
// store of TestBuildBigStore took 942 MiB instead of 409 (keys, changes
// and segment indexes compress 2.5 times), to save 0.85 s of the 5.1 s
// of CPU a daemon's start took on it.
func badgerOptions(opts Options) badger.Options {
	bopts := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{opts.Logger}).
		// Key changes are synced explicitly (db.Sync) so that log segments
		// do not pay an fsync each.
		WithSyncWrites(false).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false).
		WithMemTableSize(memTableSize).
		// A damaged table block is then an error, not a panic (or a
		// wrong value) deep inside Badger; the check costs a CRC per
		// block read, and checks never read the database.
		WithChecksumVerificationMode(options.OnBlockRead)
	if opts.InMemory {
		bopts = bopts.WithDir("").WithValueDir("").WithInMemory(true)
	}
	return bopts
}

// takeDir creates the data directory if needed, takes its lock (s.lock)
// and clears what a crash may have left that Badger cannot open.
func (s *Store) takeDir() error {
	if err := os.MkdirAll(s.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := checkTotalSpace(s.opts.Dir, s.opts.MinFreeSpace); err != nil {
		return err
	}
	f, err := lockDir(filepath.Join(s.opts.Dir, lockFileName))
	if err != nil {
		return err
	}
	s.lock = f
	if err := s.rememberDir(); err != nil {
		return err
	}
	if err := removeEmptyMemtables(s.opts.Dir, s.log); err != nil {
		return err
	}
	return privateModes(s.opts.Dir)
}

// checkAcknowledged opens the sequence file (s.seqf) and refuses a
// database that lost changes it acknowledged.
func (s *Store) checkAcknowledged() error {
	f, acked, err := openSeqFile(s.opts.Dir)
	if err != nil {
		return err
	}
	if acked > s.seq.Load() {
		f.Close()
		return fmt.Errorf("%w: %s holds key changes up to number %d, but change %d was acknowledged: the write-ahead log (*.mem) is damaged and what followed the damage was dropped; restore the directory from a backup",
			store.ErrCorrupt, s.opts.Dir, s.seq.Load(), acked)
	}
	s.seqf = f
	return nil
}

// removeEmptyMemtables deletes empty memtable log files (*.mem). A kill
// between Badger creating one and sizing it leaves such a file, and Badger
// then refuses to open the directory ("Create a new file"). An empty file
// holds no entries, so nothing is lost.
func removeEmptyMemtables(dir string, log *slog.Logger) error {
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, m := range mems {
		if fi, err := os.Stat(m); err == nil && fi.Size() == 0 {
			if err := os.Remove(m); err != nil {
				return fmt.Errorf("store: removing the empty memtable log %s: %w", m, err)
			}
			log.Warn("store: removed an empty memtable log left by a crash", "file", m)
		}
	}
	return nil
}

// loadState reads the last change sequence, the log segment counters and
// the last-used times.
func (s *Store) loadState() error {
	return s.db.View(func(txn *badger.Txn) error {
		seq, err := readSeq(txn)
		if err != nil {
			return err
		}
		s.seq.Store(seq)
		return s.logs.load(txn)
	})
}

// Close flushes every buffered usage-log record, stops the background
// work and closes the database. Calls after the first return the first
// call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Under both locks, so that no key change is half done and no
		// record is buffered after the writer's last drain.
		s.wmu.Lock()
		s.logs.ring.Close()
		s.closed.Store(true)
		s.wmu.Unlock()
		close(s.stop)
		s.wg.Wait()
		err := s.logs.err()
		s.rmu.Lock() // wait for running queries
		defer s.rmu.Unlock()
		if cerr := s.closeDB(); cerr != nil && err == nil {
			err = fmt.Errorf("store: close: %w", cerr)
		}
		if !s.opts.InMemory && s.gone.Load() == nil {
			// Closing flushes the memtable into a new table file.
			if perr := privateModes(s.opts.Dir); perr != nil && err == nil {
				err = perr
			}
		}
		s.unlock()
		s.closeErr = err
	})
	return s.closeErr
}

func (s *Store) unlock() {
	if s.seqf != nil {
		s.seqf.Close()
		s.seqf = nil
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// SetRetention changes the usage-log retention (0: DefaultRetention) from
// the next maintenance pass on; a negative d is refused.
func (s *Store) SetRetention(d time.Duration) error {
	if d < 0 {
		return errors.New("store: retention must not be negative")
	}
	if d == 0 {
		d = DefaultRetention
	}
	s.retention.Store(int64(d))
	return nil
}

// Retention returns the usage-log retention in effect.
func (s *Store) Retention() time.Duration { return time.Duration(s.retention.Load()) }

// maintain runs retention and value-log GC every MaintenanceInterval until
// Close.
func (s *Store) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.MaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.expire(now)
			s.gcValueLog()
			if !s.opts.InMemory {
				if err := privateModes(s.opts.Dir); err != nil {
					s.log.Warn("store: file modes", "err", err)
				}
			}
		}
	}
}

func (s *Store) expire(now time.Time) {
	if n, err := s.expireLogs(now); err != nil {
		s.log.Warn("store: log retention", "err", err)
	} else if n > 0 {
		s.log.Info("store: expired log segments", "segments", n)
	}
}

// gcValueLog runs Badger's value-log GC until it finds nothing to rewrite.
func (s *Store) gcValueLog() {
	if s.opts.InMemory {
		return
	}
	for i := 0; i < 16; i++ {
		select {
		case <-s.stop:
			return
		default:
		}
		if err := s.db.RunValueLogGC(0.5); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) {
				s.log.Debug("store: value log gc", "err", err)
			}
			return
		}
	}
}

// badgerLogger routes Badger's messages to slog, one level down: Badger
// reports routine events (compactions, replays) as INFO.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.logf(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.logf(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.logf(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   {}

func (b badgerLogger) logf(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if b.l.Enabled(ctx, level) {
		b.l.Log(ctx, level, "badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}
