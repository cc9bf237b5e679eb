package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Query limits.
const (
	DefaultLogLimit = 100
	MaxLogLimit     = 1000
	maxFilterKeyID  = 128
)

// LogFilter selects usage-log records. The zero value selects every
// record, DefaultLogLimit at a time.
type LogFilter struct {
	// KeyID selects one key's records; "" selects all.
	KeyID string
	// Method selects one HTTP method, compared case-insensitively.
	Method string
	// Status selects "" (all), one code ("403") or a class ("4xx"); see
	// ParseStatusFilter.
	Status string
	// From (inclusive) and To (exclusive) bound the record time; the zero
	// time leaves that side open. Other times must lie within
	// MinFilterTime and MaxFilterTime.
	From, To time.Time
	// Limit is the page size for QueryLogs: 0 means DefaultLogLimit, at
	// most MaxLogLimit. ExportCSV ignores it.
	Limit int
	// Cursor continues a query: LogPage.NextCursor of the previous page.
	Cursor string
}

// FilterError names the LogFilter field that is invalid. It wraps
// ErrBadFilter.
type FilterError struct {
	Field   string // "key_id", "method", "status", "from", "to", "limit", "cursor"
	Message string
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("store: bad log filter: %s: %s", e.Field, e.Message)
}

func (e *FilterError) Unwrap() error { return ErrBadFilter }

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
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 {
		return 0, 0, bad
	}
	return n, n, nil
}

// Validate reports the first invalid field of f as a *FilterError.
func (f LogFilter) Validate() error {
	_, err := f.compile()
	return err
}

// filter is a validated LogFilter, ready for matching.
type filter struct {
	keyID     string
	method    string
	stLo      int
	stHi      int // 0: any status
	from, to  int64
	hasFrom   bool
	hasTo     bool
	limit     int
	cursor    position
	hasCursor bool
}

func (f LogFilter) compile() (filter, error) {
	c := filter{keyID: f.KeyID, method: f.Method}
	if len(f.KeyID) > maxFilterKeyID {
		return c, &FilterError{Field: "key_id", Message: fmt.Sprintf("longer than %d bytes", maxFilterKeyID)}
	}
	if len(f.Method) > MaxLogMethod || strings.ContainsFunc(f.Method, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return c, &FilterError{Field: "method", Message: fmt.Sprintf("%q is not an HTTP method", f.Method)}
	}
	var err error
	if c.stLo, c.stHi, err = ParseStatusFilter(f.Status); err != nil {
		return c, err
	}
	if err := checkFilterTime("from", f.From); err != nil {
		return c, err
	}
	if err := checkFilterTime("to", f.To); err != nil {
		return c, err
	}
	if !f.From.IsZero() {
		c.from, c.hasFrom = f.From.UnixNano(), true
	}
	if !f.To.IsZero() {
		c.to, c.hasTo = f.To.UnixNano(), true
	}
	if c.hasFrom && c.hasTo && c.to <= c.from {
		// From is inclusive and To exclusive: To must come after From.
		return c, &FilterError{Field: "to", Message: "not after from"}
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxLogLimit:
		return c, &FilterError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", MaxLogLimit)}
	case f.Limit == 0:
		c.limit = DefaultLogLimit
	default:
		c.limit = f.Limit
	}
	if f.Cursor != "" {
		p, ok := parseCursor(f.Cursor)
		if !ok {
			return c, &FilterError{Field: "cursor", Message: "not a cursor this server issued"}
		}
		c.cursor, c.hasCursor = p, true
	}
	return c, nil
}

// skip reports whether no record of the segment indexed by x can match.
func (f *filter) skip(x *segIndex) bool {
	if f.hasFrom && x.max < f.from || f.hasTo && x.min >= f.to {
		return true
	}
	if f.keyID != "" && !containsBytes(x.keys, f.keyID, false) {
		return true
	}
	if f.method != "" && !containsBytes(x.methods, f.method, true) {
		return true
	}
	if f.stHi != 0 {
		for _, st := range x.statuses {
			if int(st) >= f.stLo && int(st) <= f.stHi {
				return false
			}
		}
		return true
	}
	return false
}

func containsBytes(list [][]byte, s string, fold bool) bool {
	for _, b := range list {
		if string(b) == s || fold && bytes.EqualFold(b, []byte(s)) {
			return true
		}
	}
	return false
}

// position is a record's place in the log: its segment and its index in
// the segment. Later records have greater positions.
type position struct {
	seg uint64
	i   int
}

const cursorVersion = 1

// The cursor is the position of the last record of a page; the next page
// starts just before it. Positions never change, and new records always
// get greater ones, so a walk neither repeats nor skips records and does
// not see records appended after it began.
func (p position) cursor() string {
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, p.seg)
	b = binary.AppendUvarint(b, uint64(p.i))
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (position, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 3 || b[0] != cursorVersion {
		return position{}, false
	}
	d := decoder{b: b[1:]}
	p := position{seg: d.uvarint()}
	i := d.uvarint()
	if d.err != nil || len(d.b) != 0 || i > maxSegmentRecords {
		return position{}, false
	}
	p.i = int(i)
	return p, true
}

// scan calls fn for every record matching f, newest first, starting just
// before f's cursor, until fn returns false. The segment passed to fn is
// valid only during the call.
func (s *Store) scan(ctx context.Context, f *filter, fn func(g *segment, i int, p position) bool) error {
	done, err := s.reading(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Reverse = true
		opts.Prefix = prefixIndex
		opts.PrefetchSize = 64
		it := txn.NewIterator(opts)
		defer it.Close()
		start := seqKey(prefixIndex, ^uint64(0))
		if f.hasCursor {
			start = seqKey(prefixIndex, f.cursor.seg)
		}
		var (
			x    segIndex
			g    segment
			buf  []byte
			vkey = make([]byte, len(prefixSegment)+8)
		)
		copy(vkey, prefixSegment)
		for it.Seek(start); it.Valid(); it.Next() {
			// Checked per segment so that a cancelled request or Close
			// ends a long export promptly.
			if err := ctx.Err(); err != nil {
				return err
			}
			if s.closed.Load() {
				return ErrClosed
			}
			item := it.Item()
			k := item.Key()
			if len(k) != len(prefixIndex)+8 {
				continue
			}
			id := binary.BigEndian.Uint64(k[len(prefixIndex):])
			err := item.Value(func(v []byte) error { return decodeIndex(&x, v) })
			if err != nil {
				return fmt.Errorf("segment %d: %w", id, err)
			}
			if f.skip(&x) {
				continue
			}
			binary.BigEndian.PutUint64(vkey[len(prefixSegment):], id)
			vitem, err := txn.Get(vkey)
			if err != nil {
				// Expired between the index and the data: nothing to see.
				continue
			}
			err = vitem.Value(func(v []byte) error { return decodeSegment(&g, &buf, v) })
			if err != nil {
				return fmt.Errorf("segment %d: %w", id, err)
			}
			end := g.n
			if f.hasCursor && id == f.cursor.seg {
				end = min(end, f.cursor.i)
			}
			if !f.scanSegment(&g, id, end, fn) {
				return nil
			}
		}
		return nil
	})
}

// scanSegment calls fn for the matching records of g before index end,
// newest first; it returns false when fn did.
func (f *filter) scanSegment(g *segment, id uint64, end int, fn func(*segment, int, position) bool) bool {
	key, method := -1, -1
	if f.keyID != "" {
		if key = g.dicts[dictKey].lookup(f.keyID); key < 0 {
			return true
		}
	}
	// A method dictionary may hold several spellings ("get", "GET").
	var methods [8]bool
	if f.method != "" {
		found := false
		for i, v := range g.dicts[dictMethod].vals {
			if bytes.EqualFold(v, []byte(f.method)) {
				if i >= len(methods) {
					method = -2 // many: compare each record
				} else {
					methods[i] = true
				}
				found = true
			}
		}
		if !found {
			return true
		}
	}
	keys, meths := g.idx[dictKey], g.idx[dictMethod]
	for i := end - 1; i >= 0; i-- {
		if key >= 0 && keys[i] != uint32(key) {
			continue
		}
		if f.method != "" {
			m := meths[i]
			if method == -2 {
				if !bytes.EqualFold(g.dicts[dictMethod].vals[m], []byte(f.method)) {
					continue
				}
			} else if m >= uint32(len(methods)) || !methods[m] {
				continue
			}
		}
		if f.stHi != 0 {
			if st := int(g.status[i]); st < f.stLo || st > f.stHi {
				continue
			}
		}
		if t := g.times[i]; f.hasFrom && t < f.from || f.hasTo && t >= f.to {
			continue
		}
		if !fn(g, i, position{id, i}) {
			return false
		}
	}
	return true
}

// LogPage is one page of query results.
type LogPage struct {
	Items []LogRecord `json:"items"`
	// NextCursor continues the walk (LogFilter.Cursor); "" when no
	// records are left.
	NextCursor string `json:"next_cursor"`
}

// QueryLogs returns the records matching f, newest first, f.Limit at a
// time. Newest first means in the reverse of the order AppendLog received
// them. Only written segments are searched: a record becomes visible when
// its segment is written, at most FlushInterval plus one tick (1.25 s by
// default) after AppendLog, or at once after FlushLogs. An invalid filter
// gives a *FilterError. Items is never nil.
func (s *Store) QueryLogs(ctx context.Context, f LogFilter) (LogPage, error) {
	cf, err := f.compile()
	if err != nil {
		return LogPage{}, err
	}
	page := LogPage{Items: make([]LogRecord, 0, min(cf.limit, 128))}
	var last position
	more := false
	err = s.scan(ctx, &cf, func(g *segment, i int, p position) bool {
		if len(page.Items) == cf.limit {
			more = true
			return false
		}
		page.Items = append(page.Items, g.record(i))
		last = p
		return true
	})
	if err != nil {
		return LogPage{}, err
	}
	if more {
		page.NextCursor = last.cursor()
	}
	return page, nil
}

// CSVHeader is the header row of ExportCSV.
const CSVHeader = "time,key_id,ip,method,path,status,code,entry_id,latency_us"

// ExportCSV writes every record matching f (f.Limit is ignored; f.Cursor
// is honoured), newest first, as CSV to w: the CSVHeader row, then one row
// per record, RFC 4180 quoting, CRLF line ends, times in RFC 3339 UTC with
// nanoseconds. Text cells are made formula-safe whichever of comma,
// semicolon or tab a spreadsheet splits on (see appendCSVField). Memory use does not grow with the number of rows. It returns
// the number of rows written, header excluded.
func (s *Store) ExportCSV(ctx context.Context, w io.Writer, f LogFilter) (int, error) {
	f.Limit = 0
	cf, err := f.compile()
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(CSVHeader + "\r\n"); err != nil {
		return 0, err
	}
	var (
		rows int
		row  []byte
		werr error
	)
	err = s.scan(ctx, &cf, func(g *segment, i int, _ position) bool {
		row = appendCSVRow(row[:0], g, i)
		if _, werr = bw.Write(row); werr != nil {
			return false
		}
		rows++
		return true
	})
	if err == nil {
		err = werr
	}
	if err == nil {
		err = bw.Flush()
	}
	return rows, err
}

func appendCSVRow(b []byte, g *segment, i int) []byte {
	b = timeOf(g.times[i]).AppendFormat(b, time.RFC3339Nano)
	b = append(b, ',')
	b = appendCSVField(b, g.dicts[dictKey].vals[g.idx[dictKey][i]])
	b = append(b, ',')
	if a := g.ips[i]; a.IsValid() {
		b = a.AppendTo(b)
	}
	b = append(b, ',')
	b = appendCSVField(b, g.dicts[dictMethod].vals[g.idx[dictMethod][i]])
	b = append(b, ',')
	b = appendCSVField(b, g.path(i))
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(g.status[i]), 10)
	b = append(b, ',')
	b = appendCSVField(b, g.dicts[dictCode].vals[g.idx[dictCode][i]])
	b = append(b, ',')
	b = appendCSVField(b, g.dicts[dictEntry].vals[g.idx[dictEntry][i]])
	b = append(b, ',')
	b = strconv.AppendUint(b, g.lat[i], 10)
	return append(b, '\r', '\n')
}
