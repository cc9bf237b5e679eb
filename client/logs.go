package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// LogRecord is one usage-log record: one check.
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
	// SecretHint is the hint of the secret used.
	SecretHint string `json:"secret_hint"`
	ReportOnly bool   `json:"report_only"`
	// Node is the daemon that decided the check (--node-name).
	Node string `json:"node"`
}

// LogPage is one page of records, newest first. NextCursor, empty on the
// last page, fetches the next.
type LogPage struct {
	Items      []LogRecord `json:"items"`
	NextCursor string      `json:"next_cursor"`
}

// LogFilter selects usage-log records; the zero value selects all. Status
// is a code (403) or a class (4xx); Code an error code or "none" for
// allowed checks. Limit (1 to 1000) and Cursor apply to QueryLogs.
type LogFilter struct {
	KeyID    string
	Method   string
	Status   string
	Code     string
	From, To time.Time
	Limit    int
	Cursor   string
}

func (f LogFilter) query() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("key_id", f.KeyID)
	set("method", f.Method)
	set("status", f.Status)
	set("code", f.Code)
	if !f.From.IsZero() {
		v.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		v.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	set("cursor", f.Cursor)
	return v
}

func withQuery(p string, v url.Values) string {
	if len(v) == 0 {
		return p
	}
	return p + "?" + v.Encode()
}

// QueryLogs returns one page of records.
func (c *Client) QueryLogs(ctx context.Context, f LogFilter) (*LogPage, error) {
	var out LogPage
	return &out, c.Do(ctx, "GET", withQuery("/v1/logs", f.query()), nil, &out)
}

// Logs iterates over every record f selects, newest first, fetching page
// after page (f.Limit records each); it stops at the first error, which
// it yields.
func (c *Client) Logs(ctx context.Context, f LogFilter) iter.Seq2[LogRecord, error] {
	return func(yield func(LogRecord, error) bool) {
		for {
			p, err := c.QueryLogs(ctx, f)
			if err != nil {
				yield(LogRecord{}, err)
				return
			}
			for _, r := range p.Items {
				if !yield(r, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			f.Cursor = p.NextCursor
		}
	}
}

// HeaderRows is the trailer that ends a whole CSV export: the number of
// data rows.
const HeaderRows = "X-Keygate-Rows"

// ErrIncompleteExport is wrapped by the error of an export that did not
// arrive whole.
var ErrIncompleteExport = errors.New("export incomplete")

// ExportLogs streams every record f selects to w as CSV (header row
// first; f.Limit and f.Cursor are ignored) and returns the number of data
// rows. It checks that the export is whole: the daemon confirms the row
// count in a trailer after the last row, and only then; an export without
// it, or with another count, is an error wrapping ErrIncompleteExport (w
// then holds a partial export).
func (c *Client) ExportLogs(ctx context.Context, f LogFilter, w io.Writer) (int, error) {
	f.Limit, f.Cursor = 0, ""
	return c.ExportLogsQuery(ctx, f.query(), w)
}

// ExportLogsQuery is ExportLogs with the filters as the daemon's query
// parameters (key_id, method, status, code, from, to), passed through as
// given: for a caller that takes them from its own user, such as a
// command line, and leaves their reading to the daemon.
func (c *Client) ExportLogsQuery(ctx context.Context, q url.Values, w io.Writer) (int, error) {
	res, err := c.Send(ctx, "GET", withQuery("/v1/logs/export.csv", q), nil)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	return CopyExport(w, res)
}

// CopyExport copies the body of an export answer (from Send) to w and
// checks it is whole, as ExportLogs does. It does not close the body.
func CopyExport(w io.Writer, res *http.Response) (int, error) {
	rows := &rowCounter{}
	if _, err := io.Copy(io.MultiWriter(w, rows), res.Body); err != nil {
		return rows.rows(), fmt.Errorf("export interrupted after %d rows: %w (the output is incomplete)", rows.rows(), err)
	}
	want := res.Trailer.Get(HeaderRows)
	if want == "" {
		return rows.rows(), fmt.Errorf("%w: the daemon did not confirm the end of the export (no %s trailer) after %d rows", ErrIncompleteExport, HeaderRows, rows.rows())
	}
	if n, err := strconv.Atoi(want); err != nil || n != rows.rows() {
		return rows.rows(), fmt.Errorf("%w: the daemon sent %s rows, %d arrived", ErrIncompleteExport, want, rows.rows())
	}
	return rows.rows(), nil
}

// rowCounter counts the records of a CSV stream (header excluded): line
// ends outside quoted cells.
type rowCounter struct {
	lines   int
	inQuote bool
}

func (c *rowCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		switch {
		case b == '"':
			c.inQuote = !c.inQuote
		case b == '\n' && !c.inQuote:
			c.lines++
		}
	}
	return len(p), nil
}

func (c *rowCounter) rows() int { return max(c.lines-1, 0) }

// AuditChange is one change of the audit trail: the key before (nil for a
// create) and after.
type AuditChange struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	KeyID  string    `json:"key_id"`
	Before *Key      `json:"before"`
	After  *Key      `json:"after"`
}

// AuditPage is one page of changes, newest first; NextCursor is empty on
// the last page.
type AuditPage struct {
	Items      []AuditChange `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// AuditFilter selects changes: one key's, in [From, To), Limit per page
// (1 to 1000, default 100), from Cursor.
type AuditFilter struct {
	KeyID    string
	From, To time.Time
	Limit    int
	Cursor   string
}

// Audit returns one page of the audit trail.
func (c *Client) Audit(ctx context.Context, f AuditFilter) (*AuditPage, error) {
	v := LogFilter{KeyID: f.KeyID, From: f.From, To: f.To, Limit: f.Limit, Cursor: f.Cursor}.query()
	var out AuditPage
	return &out, c.Do(ctx, "GET", withQuery("/v1/audit", v), nil, &out)
}

// Backup streams a consistent backup of the whole store to w (keygate
// restore verifies it) and returns its size. A store without a built-in
// backup answers 501 NOT_IMPLEMENTED.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	res, err := c.Send(ctx, "GET", "/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	return io.Copy(w, res.Body)
}
