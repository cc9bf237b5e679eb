// Package usagelog is the vocabulary of keygate's usage log: the Entry the
// check path hands to a store, the Record a query returns, the Filter that
// selects records (and its one validation), a Page of results, the
// pipeline's Stats, the Ring a backend buffers records in, and the CSV
// format of an export. Every store backend,
// the server and the CLI use these types; nothing re-declares them.
//
// usagelog imports only the standard library.
package usagelog

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on what one usage-log record keeps.
const (
	// MaxPath is the longest path kept; longer paths are truncated.
	MaxPath = 512
	// MaxMethod is the longest method kept; longer methods are truncated.
	MaxMethod = 32
)

// Query limits.
const (
	// DefaultLimit is the page size of a Filter whose Limit is 0.
	DefaultLimit = 100
	// MaxLimit is the largest page size.
	MaxLimit = 1000
	// MaxFilterKeyID is the longest key id a Filter may name.
	MaxFilterKeyID = 128
)

// ErrBadFilter: a Filter field is invalid; the error is a *FilterError
// naming the field.
var ErrBadFilter = errors.New("usagelog: bad log filter")

// Entry is one check, as the check path hands it to a store's AppendLog.
//
// Method and Path are borrowed: they need to stay valid only during the
// AppendLog call, which copies them (truncated to MaxMethod and MaxPath
// bytes). KeyID, EntryID, Code and Hint are kept as they are, so they
// should be long-lived strings (from engine data or constants), not
// converted from reusable buffers.
type Entry struct {
	Time time.Time
	// KeyID is "" when the key is unknown.
	KeyID string
	// EntryID is the allowlist entry that matched, "" if none.
	EntryID string
	IP      netip.Addr
	Method  []byte
	Path    []byte
	Status  int
	// Code is "" for an allowed check, else e.g. "IP_NOT_ALLOWED".
	Code    string
	Latency time.Duration
	// Hint is the hint of the secret presented (the key's, or the one a
	// rotation replaced); "" when the key is unknown.
	Hint string
}

// Record is a stored usage-log record, as queries return it. Its strings
// belong to the caller.
type Record struct {
	Time      time.Time `json:"time"` // RFC 3339 with nanoseconds in JSON
	KeyID     string    `json:"key_id"`
	IP        string    `json:"ip"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	Code      string    `json:"code"`
	EntryID   string    `json:"entry_id"`
	LatencyUS int64     `json:"latency_us"`
	// SecretHint is the hint of the secret presented, so that the use of a
	// secret a rotation replaced shows.
	SecretHint string `json:"secret_hint"`
	// ReportOnly marks an allowed check of a report-only key whose client
	// IP matched no entry: Code is IP_NOT_ALLOWED and Status 200. It is
	// derived from those two (IsReportOnly), not stored.
	ReportOnly bool `json:"report_only"`
	// Node is the daemon that decided the check (--node-name).
	Node string `json:"node"`
}

// CodeIPNotAllowed is the code of a check refused, or in report-only mode
// reported, because the client IP matched no allowlist entry.
const CodeIPNotAllowed = "IP_NOT_ALLOWED"

// IsReportOnly reports whether a record with this status and code is a
// report-only miss: logged as IP_NOT_ALLOWED, yet allowed.
func IsReportOnly(status int, code string) bool {
	return code == CodeIPNotAllowed && status < 400
}

// Codes lists the error codes a record can carry; "" (allowed) aside.
var Codes = []string{"INVALID_KEY", "INSUFFICIENT_SCOPE", CodeIPNotAllowed, "BAD_REQUEST"}

// Hits is how often an allowlist entry matched in a window.
type Hits struct {
	Count    int
	LastSeen time.Time
}

// AddrStat is one client address of a key's traffic in a window, counting
// only the checks its allowlist decided: allowed ones and IP_NOT_ALLOWED
// ones (refused or reported), not invalid keys or missing scopes.
type AddrStat struct {
	Addr netip.Addr
	// Requests counts the checks; Misses those that matched no entry
	// (IP_NOT_ALLOWED), Reported those of them a report-only key allowed.
	Requests, Misses, Reported int
	FirstSeen, LastSeen        time.Time
	// EntryID is an entry an allowed check matched ("" if none): the
	// newest one's when records are counted newest first.
	EntryID string
}

// MaxTrafficAddrs bounds the distinct addresses a traffic query returns.
const MaxTrafficAddrs = 10000

// CountsForAllowlist reports whether a record with this code is one an
// allowlist decided (see AddrStat).
func CountsForAllowlist(code string) bool { return code == "" || code == CodeIPNotAllowed }

// Page is one page of query results, newest first.
type Page struct {
	Items []Record `json:"items"`
	// NextCursor continues the walk (Filter.Cursor); "" when no records
	// are left.
	NextCursor string `json:"next_cursor"`
}

// Stats counts what happened to usage-log records in this process.
// Queued + InSegment + Written + WriteErrors + Dropped is the number of
// records appended.
type Stats struct {
	// Queued is the number of records waiting in the buffer.
	Queued int
	// InSegment is the number of records taken from the buffer into a
	// batch being filled, not yet written (or failed).
	InSegment int
	// Dropped counts records dropped because the buffer was full (or the
	// store closed).
	Dropped uint64
	// Written counts records written.
	Written uint64
	// WriteErrors counts records that could not be written (e.g. disk
	// full).
	WriteErrors uint64
	// Segments is the number of stored segments (0 for a backend that
	// has none).
	Segments int
}

// Filter selects usage-log records. The zero value selects every record,
// DefaultLimit at a time.
type Filter struct {
	// KeyID selects one key's records; "" selects all.
	KeyID string
	// Method selects one HTTP method, compared case-insensitively.
	Method string
	// Status selects "" (all), one code ("403") or a class ("4xx"); see
	// ParseStatusFilter.
	Status string
	// Code selects one error code (one of Codes, e.g. "IP_NOT_ALLOWED"),
	// or "none" for allowed checks without one; "" selects all.
	Code string
	// IP selects one client address, compared canonically: "203.0.113.5",
	// "::ffff:203.0.113.5" and the records of either are the same address.
	// "" selects all.
	IP string
	// PathPrefix selects the records whose logged path (truncated to
	// MaxPath) begins with these bytes; "" selects all.
	PathPrefix string
	// From (inclusive) and To (exclusive) bound the record time; the zero
	// time leaves that side open. Other times must lie within
	// MinFilterTime and MaxFilterTime.
	From, To time.Time
	// Limit is the page size for a query: 0 means DefaultLimit, at most
	// MaxLimit. An export ignores it.
	Limit int
	// Cursor continues a query: Page.NextCursor of the previous page. Its
	// form belongs to the backend that issued it; Validate does not look
	// inside.
	Cursor string
}

// FilterError names the Filter field that is invalid. It wraps
// ErrBadFilter.
type FilterError struct {
	Field   string // "key_id", "method", "status", "code", "ip", "path_prefix", "from", "to", "limit", "cursor"
	Message string
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("usagelog: bad log filter: %s: %s", e.Field, e.Message)
}

func (e *FilterError) Unwrap() error { return ErrBadFilter }

// BadCursor is the error a backend returns for a cursor it did not issue.
func BadCursor() error {
	return &FilterError{Field: "cursor", Message: "not a cursor this server issued"}
}

// ParseStatusFilter parses a status filter: "" (every status), an exact
// code from 100 to 599 ("403"), or a class "1xx" to "5xx" (the x's in
// either case). It returns the inclusive range of codes selected (0, 0 for
// every status), or a *FilterError.
func ParseStatusFilter(s string) (lo, hi int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	bad := &FilterError{Field: "status", Message: fmt.Sprintf("%q is not a status code (100-599) or class (1xx-5xx)", s)}
	if len(s) != 3 || s[0] < '1' || s[0] > '5' {
		return 0, 0, bad
	}
	if (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X') {
		c := int(s[0]-'0') * 100
		return c, c + 99, nil
	}
	if s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return 0, 0, bad
	}
	n, _ := strconv.Atoi(s)
	return n, n, nil
}

// Query is a validated Filter, ready for a backend to match with. Times are
// Unix nanoseconds.
type Query struct {
	KeyID  string
	Method string
	// StatusLo..StatusHi is the inclusive status range; StatusHi 0 selects
	// every status.
	StatusLo, StatusHi int
	// Code is the code selected ("" for "none"), when HasCode.
	Code    string
	HasCode bool
	// IP is Filter.IP parsed and unmapped (v4-mapped as v4), when HasIP.
	IP    netip.Addr
	HasIP bool
	// PathPrefix is Filter.PathPrefix.
	PathPrefix     string
	From, To       int64
	HasFrom, HasTo bool
	// Limit is the page size, DefaultLimit for a zero Filter.Limit.
	Limit int
	// Cursor is Filter.Cursor, for the backend to parse.
	Cursor string
}

// Match reports whether a record with these fields is selected by q
// (cursor aside).
func (q *Query) Match(t int64, keyID, method string, status int, code string) bool {
	return (q.KeyID == "" || q.KeyID == keyID) && (!q.HasCode || q.Code == code) &&
		(q.Method == "" || strings.EqualFold(q.Method, method)) &&
		(q.StatusHi == 0 || status >= q.StatusLo && status <= q.StatusHi) &&
		(!q.HasFrom || t >= q.From) && (!q.HasTo || t < q.To)
}

// MatchAddrPath reports whether a record with this client address and
// (stored) path is selected by q's IP and PathPrefix.
func (q *Query) MatchAddrPath(ip netip.Addr, path []byte) bool {
	return (!q.HasIP || ip.Unmap() == q.IP) && (q.PathPrefix == "" || len(path) >= len(q.PathPrefix) && string(path[:len(q.PathPrefix)]) == q.PathPrefix)
}

// Compile validates f and returns it as a Query. The first invalid field
// is reported as a *FilterError.
func (f Filter) Compile() (Query, error) {
	q := Query{KeyID: f.KeyID, Method: f.Method, PathPrefix: f.PathPrefix, Cursor: f.Cursor}
	if len(f.KeyID) > MaxFilterKeyID {
		return q, &FilterError{Field: "key_id", Message: fmt.Sprintf("longer than %d bytes", MaxFilterKeyID)}
	}
	if len(f.Method) > MaxMethod || strings.ContainsFunc(f.Method, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return q, &FilterError{Field: "method", Message: fmt.Sprintf("%q is not an HTTP method", f.Method)}
	}
	var err error
	if q.StatusLo, q.StatusHi, err = ParseStatusFilter(f.Status); err != nil {
		return q, err
	}
	if f.Code != "" {
		if f.Code != "none" && !slices.Contains(Codes, f.Code) {
			return q, &FilterError{Field: "code", Message: fmt.Sprintf("%q is not an error code: use one of %s, or none", f.Code, strings.Join(Codes, ", "))}
		}
		q.HasCode = true
		if f.Code != "none" {
			q.Code = f.Code
		}
	}
	if f.IP != "" {
		ip, err := netip.ParseAddr(f.IP)
		if err != nil || ip.Zone() != "" {
			return q, &FilterError{Field: "ip", Message: fmt.Sprintf("%q is not an IP address (an exact address such as 203.0.113.5 or 2001:db8::1, no prefix)", f.IP)}
		}
		q.IP, q.HasIP = ip.Unmap(), true
	}
	if len(f.PathPrefix) > MaxPath {
		return q, &FilterError{Field: "path_prefix", Message: fmt.Sprintf("longer than %d bytes, the longest path kept", MaxPath)}
	}
	if err := checkTime("from", f.From); err != nil {
		return q, err
	}
	if err := checkTime("to", f.To); err != nil {
		return q, err
	}
	if !f.From.IsZero() {
		q.From, q.HasFrom = f.From.UnixNano(), true
	}
	if !f.To.IsZero() {
		q.To, q.HasTo = f.To.UnixNano(), true
	}
	if err := CheckRange(f.From, f.To); err != nil {
		return q, err
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxLimit:
		return q, &FilterError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", MaxLimit)}
	case f.Limit == 0:
		q.Limit = DefaultLimit
	default:
		q.Limit = f.Limit
	}
	return q, nil
}

// Validate reports the first invalid field of f as a *FilterError.
func (f Filter) Validate() error {
	_, err := f.Compile()
	return err
}

// CheckRange reports a *FilterError unless to comes after from (From is
// inclusive and To exclusive) or one of them is the zero time.
func CheckRange(from, to time.Time) error {
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return &FilterError{Field: "to", Message: "not after from"}
	}
	return nil
}

// The range of times a Filter's From and To may take. Records are kept
// as Unix nanoseconds in an int64, which spans 1677-09-21 to 2262-04-11;
// a time outside it would wrap (2300 read as 1715) and select the wrong
// records, so it is refused. The bounds are whole years inside that span.
var (
	MinFilterTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxFilterTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// checkTime refuses a non-zero t outside [MinFilterTime, MaxFilterTime].
func checkTime(field string, t time.Time) error {
	if t.IsZero() || (!t.Before(MinFilterTime) && !t.After(MaxFilterTime)) {
		return nil
	}
	return &FilterError{Field: field, Message: fmt.Sprintf("%s is outside the range the log can hold: use a time from %s to %s",
		t.UTC().Format(time.RFC3339), MinFilterTime.Format(time.RFC3339), MaxFilterTime.Format(time.RFC3339))}
}

// AddTraffic counts one record into a traffic list: out holds one AddrStat
// per address, at maps an address to its index in out. A new address is
// added only while out has fewer than limit; kept is false when it was
// left out. Records may come in any order. entryID is copied.
func AddTraffic(out []AddrStat, at map[netip.Addr]int, limit int, ip netip.Addr, t time.Time, status int, code string, entryID []byte) (_ []AddrStat, kept bool) {
	i, ok := at[ip]
	if !ok {
		if len(out) >= limit {
			return out, false
		}
		i = len(out)
		at[ip] = i
		out = append(out, AddrStat{Addr: ip, FirstSeen: t, LastSeen: t})
	}
	a := &out[i]
	a.Requests++
	if code == CodeIPNotAllowed {
		a.Misses++
		if IsReportOnly(status, code) {
			a.Reported++
		}
	}
	if t.Before(a.FirstSeen) {
		a.FirstSeen = t
	}
	if t.After(a.LastSeen) {
		a.LastSeen = t
	}
	if a.EntryID == "" && code == "" {
		a.EntryID = string(entryID)
	}
	return out, true
}
