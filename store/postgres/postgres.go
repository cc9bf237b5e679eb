// Package postgres is keygate's PostgreSQL store, for fleet mode: many
// daemons sharing keys, allowlists, the audit trail, the change feed and
// the usage log through one database (PostgreSQL 13 or newer), through
// pgx v5 and its pool. It implements the store contract (store.Store, and
// the same storetest suite as the Badger backend passes), store.Notifier
// (LISTEN/NOTIFY) and store.Health (Up, for keygate_store_up), plus Import
// for keygate migrate. A key's version (the ETag of If-Match) is the
// number of its last change, as in the Badger backend.
//
// # Schema
//
// The schema is versioned SQL embedded in the binary (migrations/*.sql),
// applied by Open under a PostgreSQL advisory lock, so that ten daemons
// starting at once migrate once; applied versions are kept in
// schema_migrations. Tables: keys (one row per key; version counts its
// changes), entries (allowlist entries in order, with their stable ids),
// changes (the audit trail and change feed; before and after as JSON),
// feed (the change counter), usage_log (partitioned by day) and last_used.
// Times are Unix nanoseconds, NULL for the zero time, so that Go times
// round-trip exactly.
//
// # Durability and the change feed
//
// Every key change is one transaction: the key, its entries, its Change
// and the counter are written together or not at all, and a change is
// acknowledged after COMMIT returned (durable with the server's default
// synchronous_commit). The change's number comes from the single feed row,
// updated in the change's own transaction: its row lock serialises key
// changes fleet-wide, so they commit in the order of their numbers and the
// numbers have no gaps. A reader following Changes(seq > N) therefore never
// skips a change. A SEQUENCE could not promise that: its values are taken
// before commit, so change 7 can commit and be read before change 6, and a
// reader that moved on to 7 never sees 6 (TestPlainSequenceSkips shows it).
// Management writes can afford the serialisation; checks never write keys.
//
// Each change also sends NOTIFY keygate_changes with its number, in its
// transaction (so only once committed); Listen delivers these so that
// daemons catch up at once, with their poll of Changes as the fallback.
//
// # Usage logs
//
// AppendLog copies a record into a preallocated ring and never blocks or
// allocates; a writer goroutine takes batches from it and writes each with
// COPY, with the keys' last-used times, in one transaction. The table is
// partitioned by day (range on time_ns): the writer creates partitions
// ahead of time and for any day a batch needs, and retention drops whole
// partitions older than Options.Retention. Batches commit without waiting
// for the WAL flush (synchronous_commit off for them only): a crash of the
// database server can lose the last moments of records, as a crash can
// with the Badger store's unsynced segments. Each record names its daemon
// (Options.Node). Queries and exports read the whole fleet's records,
// newest first: in the reverse of the order they were written (an id from
// a sequence, taken as COPY inserts them), which for one daemon is the
// reverse of the order AppendLog received them, as in the Badger store.
//
// # Outage
//
// When the database cannot be reached, key changes and reads fail with an
// error wrapping store.ErrUnavailable (nothing half-applied: the transaction did
// not commit), while AppendLog keeps accepting records: batches that
// cannot be written are appended to a spool file (Options.SpoolDir, at
// most Options.SpoolMaxBytes) and written, oldest first, once the database
// answers again. Records that do not fit in the spool are counted as
// dropped, exactly. The spool survives a restart of the daemon; it is
// written without fsync, like the Badger store's log segments, so a crash
// of the machine can lose its last writes. Each spooled batch is written
// in one transaction, so a replay writes none twice; the one way to get a
// duplicate is a COMMIT that succeeded but whose reply was lost with the
// connection (the batch is then spooled and written again). After a failed
// connection the writer spools without trying again for a second, so an
// unreachable server costs one connection attempt (at most
// Options.ConnectTimeout) per second, not one per batch.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keygate/keygate/store"
)

// ErrSchemaNewer: the database was migrated by a newer keygate; Open
// refuses it rather than write rows an older schema's code does not know.
var ErrSchemaNewer = errors.New("store: database schema is newer than this binary")

// Defaults for the zero values of Options fields.
const (
	DefaultLogBuffer           = 1 << 16
	DefaultBatchRecords        = 8192
	DefaultFlushInterval       = time.Second
	DefaultRetention           = 30 * 24 * time.Hour
	DefaultMaintenanceInterval = 10 * time.Minute
	DefaultSpoolMaxBytes       = 256 << 20
	DefaultConnectTimeout      = 5 * time.Second
)

// Options configure a Store. Zero values mean the defaults; build them
// with DefaultOptions and the WithX methods, each returning a copy.
type Options struct {
	// URL is the database URL (postgres://user:password@host:port/db) or
	// key=value connection string. Required.
	URL string
	// Node names this daemon in its usage-log records (e.g. host:port).
	Node string
	// LogBuffer is the ring's capacity in records (default 1<<16).
	LogBuffer int
	// BatchRecords is the most records written in one COPY (default 8192).
	BatchRecords int
	// FlushInterval is the longest a record waits in the ring (default 1s).
	FlushInterval time.Duration
	// Retention is the age after which usage-log partitions are dropped
	// (default 30 days), in whole days.
	Retention time.Duration
	// MaintenanceInterval is how often partitions are created ahead and
	// dropped, and last-used times refreshed from the fleet (default 10
	// minutes; last-used refreshes at least every 5 s).
	MaintenanceInterval time.Duration
	// SpoolDir holds the spool file of records not yet written during an
	// outage; "" keeps no spool (such records are counted as write errors).
	SpoolDir string
	// SpoolMaxBytes bounds the spool file (default 256 MiB).
	SpoolMaxBytes int64
	// MaxConns is the pool size (default pgxpool's: max(4, CPUs)).
	MaxConns int32
	// ConnectTimeout bounds each connection attempt (default 5 s).
	ConnectTimeout time.Duration
	// Logger receives the store's messages (default: none).
	Logger *slog.Logger
}

// DefaultOptions returns the options for the database at url.
func DefaultOptions(url string) Options { return Options{URL: url} }

// WithNode returns a copy of o with Node set.
func (o Options) WithNode(n string) Options { o.Node = n; return o }

// WithLogBuffer returns a copy of o with LogBuffer set.
func (o Options) WithLogBuffer(n int) Options { o.LogBuffer = n; return o }

// WithBatchRecords returns a copy of o with BatchRecords set.
func (o Options) WithBatchRecords(n int) Options { o.BatchRecords = n; return o }

// WithFlushInterval returns a copy of o with FlushInterval set.
func (o Options) WithFlushInterval(d time.Duration) Options { o.FlushInterval = d; return o }

// WithRetention returns a copy of o with Retention set.
func (o Options) WithRetention(d time.Duration) Options { o.Retention = d; return o }

// WithMaintenanceInterval returns a copy of o with MaintenanceInterval set.
func (o Options) WithMaintenanceInterval(d time.Duration) Options {
	o.MaintenanceInterval = d
	return o
}

// WithSpool returns a copy of o with SpoolDir and SpoolMaxBytes set.
func (o Options) WithSpool(dir string, maxBytes int64) Options {
	o.SpoolDir, o.SpoolMaxBytes = dir, maxBytes
	return o
}

// WithMaxConns returns a copy of o with MaxConns set.
func (o Options) WithMaxConns(n int32) Options { o.MaxConns = n; return o }

// WithLogger returns a copy of o with Logger set.
func (o Options) WithLogger(l *slog.Logger) Options { o.Logger = l; return o }

// Validate reports the first invalid field of o.
func (o Options) Validate() error {
	switch {
	case o.URL == "":
		return errors.New("store: options: URL is required (postgres://user:password@host:port/database)")
	case o.LogBuffer < 0:
		return errors.New("store: options: LogBuffer must not be negative")
	case o.BatchRecords < 0:
		return errors.New("store: options: BatchRecords must not be negative")
	case o.FlushInterval < 0:
		return errors.New("store: options: FlushInterval must not be negative")
	case o.Retention < 0:
		return errors.New("store: options: Retention must not be negative")
	case o.MaintenanceInterval < 0:
		return errors.New("store: options: MaintenanceInterval must not be negative")
	case o.SpoolMaxBytes < 0:
		return errors.New("store: options: SpoolMaxBytes must not be negative")
	case o.MaxConns < 0:
		return errors.New("store: options: MaxConns must not be negative")
	case o.ConnectTimeout < 0:
		return errors.New("store: options: ConnectTimeout must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.LogBuffer == 0 {
		o.LogBuffer = DefaultLogBuffer
	}
	if o.BatchRecords == 0 {
		o.BatchRecords = DefaultBatchRecords
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
	if o.SpoolMaxBytes == 0 {
		o.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is an open PostgreSQL store. It is safe for concurrent use.
type Store struct {
	opts Options
	pool *pgxpool.Pool
	log  *slog.Logger

	logs logWriter

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
	wg        sync.WaitGroup

	// notify receives a value after each change announced fleet-wide
	// (Notifications); listening starts with Open.
	notify chan struct{}
	// health is whether the database answered the last attempt to reach
	// it, and since when (Up).
	// retention is the usage-log retention in effect (SetRetention).
	retention atomic.Int64

	healthMu    sync.Mutex
	down        bool
	healthSince time.Time

	// beforeCommit, if set (tests only), runs in each key change's
	// transaction just before COMMIT, with the feed row locked.
	beforeCommit func()
}

// Open connects to the database, applies the schema migrations it lacks
// and starts the usage-log writer. A bad URL, a wrong password, a missing
// database or a server not listening each give a one-line error that says
// what to fix; it never contains the password.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("store: database URL is not valid (%s); the form is postgres://user:password@host:port/database", redact(err, opts.URL))
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %s", redact(err, opts.URL))
	}
	s := &Store{opts: opts, pool: pool, log: opts.Logger, stop: make(chan struct{}),
		notify: make(chan struct{}, 1), healthSince: time.Now()}
	s.retention.Store(int64(opts.Retention))
	if err := s.ping(ctx, cfg.ConnConfig); err != nil {
		pool.Close()
		return nil, err
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: schema migration: %w", s.wrap(err))
	}
	if err := s.logs.init(ctx, s); err != nil {
		pool.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.logs.run()
	go func() {
		defer s.wg.Done()
		s.Listen(context.Background(), func(uint64) {
			select {
			case s.notify <- struct{}{}:
			default:
			}
		})
	}()
	return s, nil
}

// Notifications receives a value after changes are committed, by any
// daemon on the database (LISTEN keygate_changes on a connection of its
// own, re-opened when it breaks; a value follows each reconnection too,
// so that a follower catches up on what it missed). It implements
// store.Notifier.
func (s *Store) Notifications() <-chan struct{} { return s.notify }

// Retention is the usage-log retention in effect.
func (s *Store) Retention() time.Duration { return time.Duration(s.retention.Load()) }

// SetRetention changes the usage-log retention from the next maintenance
// pass (SIGHUP); whole days, at least one.
func (s *Store) SetRetention(d time.Duration) error {
	if d <= 0 {
		return errors.New("store: retention must be positive")
	}
	s.retention.Store(int64(d))
	return nil
}

// Health implements store.Health: nil while the database answers, else
// an error wrapping store.ErrUnreachable that says since when it does not
// (every daemon of the fleet sees the same: /readyz stays 200, degraded),
// or store.ErrClosed.
func (s *Store) Health() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if up, since := s.Up(); !up {
		return fmt.Errorf("%w: the database has not answered since %s", store.ErrUnreachable, since.UTC().Format(time.RFC3339))
	}
	return nil
}

// Up reports whether the database answered the last attempt to reach it
// (the notification connection, a usage-log batch, a key read or write),
// and since when that has been so.
func (s *Store) Up() (bool, time.Time) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return !s.down, s.healthSince
}

// setUp records the database's state; a change of state is logged once,
// the outage with the time it began.
func (s *Store) setUp(up bool, err error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.down == !up {
		return
	}
	now := time.Now()
	if up {
		s.log.Warn("store: database reachable again", "down_since", s.healthSince.UTC().Format(time.RFC3339), "down_for", now.Sub(s.healthSince).Round(time.Millisecond).String())
	} else {
		s.log.Error("store: database unreachable; checks answer from the last snapshot, management writes fail with 503", "since", now.UTC().Format(time.RFC3339), "err", err)
	}
	s.down, s.healthSince = !up, now
}

// ping connects once and turns the usual failures into what to fix.
func (s *Store) ping(ctx context.Context, cc *pgx.ConnConfig) error {
	err := s.pool.Ping(ctx)
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("%s:%d", cc.Host, cc.Port)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000"):
		return fmt.Errorf("store: PostgreSQL at %s refused user %q (%s): check the user and password in the database URL", where, cc.User, pe.Code)
	case errors.As(err, &pe) && pe.Code == "3D000":
		return fmt.Errorf("store: database %q does not exist on %s: create it (createdb %s) or fix the database name in the URL", cc.Database, where, cc.Database)
	case errors.As(err, &pe):
		return fmt.Errorf("store: PostgreSQL at %s: %s (%s)", where, pe.Message, pe.Code)
	}
	var ne net.Error
	if errors.As(err, &ne) || isRefused(err) {
		return fmt.Errorf("%w: nothing accepts connections at %s: is PostgreSQL running there, and are the host and port in the database URL right?", store.ErrUnreachable, where)
	}
	return fmt.Errorf("%w: connecting to %s: %s", store.ErrUnreachable, where, redact(err, s.opts.URL))
}

func isRefused(err error) bool {
	m := err.Error()
	return strings.Contains(m, "connection refused") || strings.Contains(m, "no such host") || strings.Contains(m, "timeout")
}

// redact returns err's message on one line without the URL's password.
func redact(err error, url string) string {
	m := strings.ReplaceAll(err.Error(), "\n", " ")
	if cfg, perr := pgconn.ParseConfig(url); perr == nil && cfg.Password != "" {
		m = strings.ReplaceAll(m, cfg.Password, "xxxxx")
	}
	// An unparsable URL: hide whatever follows "user:" up to "@".
	if i := strings.Index(url, "://"); i >= 0 {
		if at := strings.LastIndex(url, "@"); at > i {
			if c := strings.Index(url[i+3:at], ":"); c >= 0 {
				m = strings.ReplaceAll(m, url[i+3+c+1:at], "xxxxx")
			}
		}
	}
	return m
}

// wrap marks errors that mean the database could not be reached (as
// opposed to one it answered with) as store.ErrUnavailable.
func (s *Store) wrap(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if unavailable(err) {
		s.setUp(false, err)
		return fmt.Errorf("%w: %w", store.ErrUnreachable, err)
	}
	return err
}

// unavailable: connection failures, and the server's own "shutting down",
// "too many connections" and connection-class errors.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300"
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "unexpected EOF") ||
		strings.Contains(err.Error(), "closed pool")
}

// Close writes (or spools) every buffered usage-log record, stops the
// writer and closes the pool. Calls after the first return its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.logs.ring.Close()
		s.closed.Store(true)
		close(s.stop)
		s.wg.Wait()
		s.closeErr = s.logs.finalErr
		s.pool.Close()
		s.logs.closeSpool()
	})
	return s.closeErr
}

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key held while migrating
// ("keygate" in ASCII).
const migrationLock = 0x6b657967617465

// migrationsApplied counts migrations this process applied (tests).
var migrationsApplied atomic.Int64

// migrate applies, in order, each embedded migration not yet recorded in
// schema_migrations, each in its own transaction, holding an advisory
// lock so that concurrent daemons migrate once. A small loop rather than
// goose or tern: the need is exactly this (ordered files, one lock, one
// version table), pgx-native, without database/sql (goose) or template
// dependencies (tern).
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	known := 0
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		if v, err := strconv.Atoi(name[:max(strings.IndexByte(name, '_'), 0)]); err == nil {
			known = max(known, v)
		}
	}
	var newest int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&newest); err != nil {
		return err
	}
	if newest > known {
		return fmt.Errorf("%w: the database schema is at version %d, newer than this keygate binary knows (%d): run a keygate at least as new as the one that migrated it", ErrSchemaNewer, newest, known)
	}
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		v, err := strconv.Atoi(name[:strings.IndexByte(name, '_')])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", name)
		}
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", v).Scan(&done); err != nil {
			return err
		}
		if done {
			continue
		}
		sql, err := migrations.ReadFile(f)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v, name)
			return err
		})
		if err != nil {
			return err
		}
		migrationsApplied.Add(1)
	}
	return nil
}
