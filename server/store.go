package server

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/keygate/keygate/engine"
)

// The sentinel errors a KeyStore or LogStore returns (wrapped with %w) so
// that the server can answer with the right status. An adapter around a
// concrete store translates that store's own errors into these.
var (
	// ErrNotFound: the key (or entry) does not exist. Answered with 404.
	ErrNotFound = errors.New("server: not found")
	// ErrConflict: the change conflicts with the current state (for
	// example, editing a revoked key). Answered with 409.
	ErrConflict = errors.New("server: conflict")
	// ErrInvalid: the request is well-formed but its content breaks a rule.
	// Answered with 422.
	ErrInvalid = errors.New("server: invalid request")
	// ErrBadRequest: the request cannot be parsed (malformed JSON, a bad
	// query parameter). Answered with 400.
	ErrBadRequest = errors.New("server: bad request")
	// ErrUnavailable: the store is closed or not ready. Answered with 503.
	ErrUnavailable = errors.New("server: store unavailable")
)

// Change is one committed change to a key, as a KeyStore reports it.
type Change struct {
	// Seq is the store-wide change sequence number; strictly increasing.
	Seq uint64
	// After is the whole key after the change. It is handed to the engine
	// and must not be changed afterwards.
	After *engine.Key
}

// KeyStore is what the server needs from a key store. Implementations must
// be safe for concurrent use. Every write is durable when it returns
// without error.
type KeyStore interface {
	// CreateKey stores a new key.
	CreateKey(ctx context.Context, k *engine.Key, actor string) (Change, error)
	// UpdateKey reads key id, calls fn on a copy that fn may change (except
	// ID and Hash) and writes it back, all or nothing: when fn returns an
	// error nothing is written and that error is returned unchanged.
	// action names the change for the audit trail ("key.update", ...).
	UpdateKey(ctx context.Context, id, actor, action string, fn func(k *engine.Key) error) (Change, error)
	// GetKey returns key id or an error wrapping ErrNotFound.
	GetKey(ctx context.Context, id string) (*engine.Key, error)
	// ListKeys returns every key, oldest first.
	ListKeys(ctx context.Context) ([]*engine.Key, error)
	// LoadAll returns every key (revoked ones included) and the change
	// sequence number they reflect.
	LoadAll(ctx context.Context) ([]*engine.Key, uint64, error)
	// Changes returns up to limit changes with Seq > since, oldest first.
	Changes(ctx context.Context, since uint64, limit int) ([]Change, error)
}

// LogEntry is one check decision handed to a LogSink. Method and Path are
// borrowed: they are valid only during the AppendLog call, which must copy
// them if it keeps them. KeyID, EntryID and Code are long-lived strings
// (engine data or constants) and may be kept as they are.
type LogEntry struct {
	Time    time.Time
	KeyID   string
	EntryID string
	IP      netip.Addr
	Method  []byte
	Path    []byte
	Status  int
	Code    string
	Latency time.Duration
}

// LogSink receives every check decision. AppendLog must never block and
// should not allocate: it is called on the check path.
type LogSink interface {
	AppendLog(e *LogEntry)
}

// LogFilter selects usage-log records. The zero value selects everything.
type LogFilter struct {
	KeyID string
	// Method matches exactly, case-insensitively.
	Method string
	// Status is "" (any), an exact code such as "403", or a class such as
	// "4xx".
	Status string
	// From is inclusive, To exclusive; the zero time leaves that end open.
	From, To time.Time
	// Limit is the page size: 1..1000, 0 meaning the store's default.
	Limit int
	// Cursor continues a previous query (LogPage.NextCursor).
	Cursor string
}

// LogRecord is one stored usage-log record.
type LogRecord struct {
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	IP        string    `json:"ip"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	Code      string    `json:"code"`
	EntryID   string    `json:"entry_id"`
	LatencyUS int64     `json:"latency_us"`
}

// LogPage is one page of a log query, newest first.
type LogPage struct {
	Items []LogRecord `json:"items"`
	// NextCursor continues the query; "" when there is nothing more.
	NextCursor string `json:"next_cursor"`
}

// LogStats describes the usage-log pipeline, for /metrics.
type LogStats struct {
	Queued      int
	Dropped     uint64
	Written     uint64
	WriteErrors uint64
}

// LogStore is what the server needs to read usage logs back. An invalid
// filter is reported with an error wrapping ErrBadRequest.
type LogStore interface {
	LogSink
	QueryLogs(ctx context.Context, f LogFilter) (LogPage, error)
	// ExportCSV writes every matching record as CSV, header row first,
	// newest first, and returns the number of rows written.
	ExportCSV(ctx context.Context, w io.Writer, f LogFilter) (int, error)
	LogStats() LogStats
	// LastUsed returns when the key was last seen in a written log record,
	// or the zero time.
	LastUsed(keyID string) time.Time
}

// Store is everything the server needs from the storage layer.
type Store interface {
	KeyStore
	LogStore
}
