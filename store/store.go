// Package store is the contract between keygate and a storage backend:
// the Store interface the key set and the server use, the Change that the
// change feed and the audit trail carry, and the errors every backend
// returns. The backends live below it (store/badger: one embedded Badger
// database in one data directory; store/postgres: one PostgreSQL database
// shared by a fleet of daemons); store/storetest is the suite each of them
// must pass.
//
// # Contract
//
// A Store is safe for concurrent use.
//
// Keys: every key change (CreateKey, UpdateKey) is all or nothing, and is
// durable when the method returns without error: a change that was
// acknowledged survives the process being killed, and a method that
// returned an error wrote nothing. Every change gets the next number of
// one gapless sequence (1, 2, 3, ...), stored with the change atomically.
// Changes(since) returns what changed after a given number, oldest first,
// never skipping a number: a reader that loaded the keys at sequence N
// (LoadAll) and applies Changes(N, ...) in order sees every change exactly
// once. Changes is also the audit trail: who (Actor), when, and the key
// Before and After.
//
// Usage log: AppendLog never blocks and does not allocate (it is called on
// the check path); records that do not fit are dropped and counted
// (usagelog.Stats.Dropped). Records become visible to QueryLogs and
// ExportCSV shortly after, or at once after FlushLogs. Queries return
// records newest first, that is in the reverse of the order AppendLog
// received them; a cursor stays valid while records are appended.
//
// Errors wrap the sentinels below, to be tested with errors.Is; an invalid
// log filter is a *usagelog.FilterError (usagelog.ErrBadFilter).
//
// store imports only engine and usagelog: it never names a backend.
package store

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/usagelog"
)

// The errors of the store contract. Backends wrap these (or return them)
// so that callers, the server above all, can tell what went wrong.
var (
	// ErrNotFound: no key has the requested id.
	ErrNotFound = errors.New("store: key not found")
	// ErrConflict: the change conflicts with what is stored.
	ErrConflict = errors.New("store: conflict")
	// ErrExists: a key with the same id already exists. It wraps
	// ErrConflict.
	ErrExists error = &kindError{"store: key already exists", ErrConflict}
	// ErrInvalid: the change breaks a rule of the store.
	ErrInvalid = errors.New("store: invalid change")
	// ErrImmutable: an update function changed a key's ID or Hash. It
	// wraps ErrInvalid.
	ErrImmutable error = &kindError{"store: key id and hash cannot be changed", ErrInvalid}
	// ErrUnavailable: the store cannot serve the request now (closed, no
	// disk space, database unreachable). Nothing was written.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrClosed: the store has been closed. It wraps ErrUnavailable.
	ErrClosed error = &kindError{"store: closed", ErrUnavailable}
	// ErrNoSpace: the storage has less free space than the backend keeps
	// in reserve; nothing was written. It wraps ErrUnavailable.
	ErrNoSpace error = &kindError{"store: not enough free disk space", ErrUnavailable}
	// ErrGone: the storage the store opened is no longer there (the data
	// directory was removed, moved or replaced): nothing can be written
	// until the daemon is restarted on it. It wraps ErrUnavailable.
	ErrGone error = &kindError{"store: storage gone", ErrUnavailable}
	// ErrUnreachable: a store shared by several daemons (a database) cannot
	// be reached from this one. It wraps ErrUnavailable. Unlike the other
	// unavailable errors it is not this daemon's own fault: see Health.
	ErrUnreachable error = &kindError{"store: shared store unreachable", ErrUnavailable}
	// ErrLocked: another process (or another store in this process) holds
	// the storage that only one may open.
	ErrLocked = errors.New("store: data directory is in use by another process")
	// ErrCorrupt: stored data could not be decoded, or acknowledged
	// changes are missing.
	ErrCorrupt = errors.New("store: corrupt data")
	// ErrPrecondition: UpdateKeyIf was given a version that is no longer
	// the key's (it changed since); nothing was written.
	ErrPrecondition = errors.New("store: key changed since the given version")
)

// Health is implemented by a backend that can tell whether management
// writes can succeed now. The server's /readyz asks it on each request,
// so it must be cheap (a stat, an atomic load) and must not block.
//
// Health returns nil when writes can succeed. Otherwise it returns an
// error saying why, wrapping one of the sentinels above:
//
//   - a local fault — ErrClosed, ErrNoSpace (the free-space reserve is
//     reached), ErrGone (the data directory was removed or moved): this
//     daemon cannot write while its peers, if any, can; /readyz answers
//     503 with the reason, so that a load balancer sends the traffic
//     elsewhere;
//   - ErrUnreachable: a store shared by a fleet of daemons cannot be
//     reached. Every daemon of the fleet sees the same, so /readyz stays
//     200 (checks are answered from the keys in memory; taking the whole
//     fleet out of rotation would be an outage) and names the fault in
//     its body as degraded. A backend that knows since when it has been
//     unreachable says so in the error's message.
//
// A backend that cannot tell does not implement Health: /readyz then
// reports only the server's own state.
type Health interface {
	Health() error
}

// kindError is a sentinel that is also one of a broader kind.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Change is one entry of the audit trail and of the change sequence: a
// key as it was before and after one change. Keys in a Change belong to
// the caller.
type Change struct {
	// Seq is the change's number in the sequence; the first change is 1.
	Seq  uint64
	Time time.Time
	// Actor is who made the change, as the caller named it ("admin-api").
	Actor string
	// Action names the change: "key.create", "key.update", or what the
	// caller of UpdateKey chose ("key.revoke", "allowlist.replace").
	Action string
	KeyID  string
	// Before is the key before the change; nil on create.
	Before *engine.Key
	// After is the full key after the change.
	After *engine.Key
	// Version is the key's version after the change (see
	// Keys.GetKeyVersion).
	Version uint64
}

// The actions the store itself names.
const (
	ActionCreate = "key.create"
	ActionUpdate = "key.update"
)

// Keys is the key half of the contract.
type Keys interface {
	// CreateKey stores a new key, which must have an ID and a Hash, and
	// records the change. It fails with ErrExists if the ID is taken. The
	// store keeps its own copy of k.
	CreateKey(ctx context.Context, k *engine.Key, actor string) (Change, error)
	// UpdateKey reads key id, calls fn on a copy that fn may change
	// (except ID, and Hash other than by a rotation that keeps the old
	// hash as PrevHash: ErrImmutable), writes it back and records the
	// change under action ("" means ActionUpdate), all or nothing: when fn
	// returns an error nothing is written and that error is returned
	// unchanged. fn may run with the store's write lock held: it must not
	// call the store.
	UpdateKey(ctx context.Context, id, actor, action string, fn func(k *engine.Key) error) (Change, error)
	// UpdateKeyIf is UpdateKey that applies only if the key's version is
	// still version (from GetKeyVersion or Change.Version: the ETag of
	// an If-Match); otherwise it fails with an error wrapping
	// ErrPrecondition and writes nothing. Version 0 means any version.
	UpdateKeyIf(ctx context.Context, id string, version uint64, actor, action string, fn func(k *engine.Key) error) (Change, error)
	// GetKey returns key id, or an error wrapping ErrNotFound.
	GetKey(ctx context.Context, id string) (*engine.Key, error)
	// GetKeyVersion is GetKey also returning the key's version: a number
	// other than 0 that every change of the key replaces with a greater
	// one, read consistently with the key.
	GetKeyVersion(ctx context.Context, id string) (*engine.Key, uint64, error)
	// ListKeys returns every key, oldest first (by CreatedAt, then ID).
	ListKeys(ctx context.Context) ([]*engine.Key, error)
	// LoadAll returns every key (revoked ones included) and the sequence
	// number of the last change they reflect, read consistently.
	LoadAll(ctx context.Context) ([]*engine.Key, uint64, error)
	// Changes returns up to limit changes with Seq > since, oldest first,
	// with no gap: the first has Seq since+1.
	Changes(ctx context.Context, since uint64, limit int) ([]Change, error)
	// Audit returns up to q.Limit changes (MaxAuditLimit when 0 or more)
	// with Seq below q.Before (every change when 0), newest first (by
	// Seq), keeping those of key q.KeyID (any key when "") made at or
	// after q.From and before q.To (unbounded when zero). It reads the
	// same trail as Changes. The next page is q.Before set to the last
	// returned Seq.
	Audit(ctx context.Context, q AuditQuery) ([]Change, error)
}

// AuditQuery selects changes for Keys.Audit.
type AuditQuery struct {
	KeyID    string
	From, To time.Time
	Before   uint64
	Limit    int
}

// MaxAuditLimit is the largest page Audit returns.
const MaxAuditLimit = 1000

// Match reports whether c is selected by q's key and time bounds (not
// by Before or Limit): the filter every backend applies.
func (q AuditQuery) Match(c Change) bool {
	return (q.KeyID == "" || c.KeyID == q.KeyID) &&
		(q.From.IsZero() || !c.Time.Before(q.From)) &&
		(q.To.IsZero() || c.Time.Before(q.To))
}

// PageLimit is q.Limit bounded to 1..MaxAuditLimit.
func (q AuditQuery) PageLimit() int {
	if q.Limit <= 0 || q.Limit > MaxAuditLimit {
		return MaxAuditLimit
	}
	return q.Limit
}

// Logs is the usage-log half of the contract.
type Logs interface {
	// AppendLog queues one record. It never blocks and does not allocate;
	// it copies e's borrowed bytes.
	AppendLog(e *usagelog.Entry)
	// FlushLogs returns once every record appended before the call is
	// written (or counted as a write error), and so visible to queries.
	FlushLogs() error
	// QueryLogs returns the records matching f, newest first, f.Limit at a
	// time. Items is never nil.
	QueryLogs(ctx context.Context, f usagelog.Filter) (usagelog.Page, error)
	// ExportCSV writes every record matching f (f.Limit ignored, f.Cursor
	// honoured), newest first, to w with a usagelog.CSVWriter on names:
	// the header row, then one row per record, whose key_name is what
	// names gives for its key id (asked once per distinct id; nil names
	// leave the column empty). It returns the number of rows written,
	// header excluded.
	ExportCSV(ctx context.Context, w io.Writer, f usagelog.Filter, names usagelog.KeyNames) (int, error)
	// LogStats counts what happened to this process's records.
	LogStats() usagelog.Stats
	// LastUsed returns when the key was last seen in a written record, or
	// the zero time.
	LastUsed(keyID string) time.Time
	// EntryHits counts the key's written records with a time at or after
	// since per allowlist entry that matched them (by entry id), with the
	// newest one's time. Entries without hits are absent.
	EntryHits(ctx context.Context, keyID string, since time.Time) (map[string]usagelog.Hits, error)
	// Traffic returns one usagelog.AddrStat per distinct client address of
	// the key's written records at or after since that its allowlist
	// decided (usagelog.CountsForAllowlist), at most limit addresses (1 to
	// usagelog.MaxTrafficAddrs; the most recently seen are kept first),
	// in no particular order, and whether addresses were left out.
	Traffic(ctx context.Context, keyID string, since time.Time, limit int) ([]usagelog.AddrStat, bool, error)
	// LogBuckets counts the written records q selects per time bucket
	// (usagelog.Bucket), every bucket of q oldest first, empty ones too:
	// the aggregate GET /v1/logs/stats answers, computed by the store. An
	// invalid q gives a *usagelog.FilterError.
	LogBuckets(ctx context.Context, q usagelog.BucketQuery) ([]usagelog.Bucket, error)
}

// Store is a storage backend: keys, the change feed and the usage log.
type Store interface {
	Keys
	Logs
	// Close flushes the usage log and releases the store. Every method
	// called afterwards fails with ErrClosed (AppendLog counts a drop).
	Close() error
}

// Backuper is implemented by a backend that can write a consistent
// backup of everything it holds while it serves (the embedded Badger
// store). Backup writes it to w, a complete file in the backend's backup
// format, and returns the first error of the store or of w. A backend
// whose data lives in a database server has no Backuper: the database's
// own backups are the ones to take.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) error
}

// Notifier is implemented by a backend that can announce commits, its own
// and other processes' (PostgreSQL's LISTEN/NOTIFY). The key set then
// catches up as soon as a value arrives instead of at its next poll; it
// polls all the same, so a lost notification only delays a change.
type Notifier interface {
	// Notifications returns a channel that receives a value after changes
	// are committed; several commits may share one value. It may be
	// closed when the store closes.
	Notifications() <-chan struct{}
}
