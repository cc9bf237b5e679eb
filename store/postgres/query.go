package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

// cursorVersion 2 tells these cursors from the Badger store's (1).
const cursorVersion = 2

// A cursor is the id of the last record of a page: the next page holds
// the records written before it. Ids grow in the order records are
// written, so a walk neither repeats nor skips records and does not see
// the ones written after it began (except, rarely, another daemon's batch
// whose COPY took its ids before and committed after the walk began).
func cursorOf(id int64) string {
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, uint64(id))
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (id int64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != cursorVersion {
		return 0, false
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 || n+1 != len(b) || v > 1<<62 {
		return 0, false
	}
	return int64(v), true
}

// query is a validated filter as SQL.
type query struct {
	where []string
	args  []any
	limit int
}

func (q *query) add(cond string, args ...any) {
	for i := range args {
		q.args = append(q.args, args[i])
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(q.args)), 1)
	}
	q.where = append(q.where, cond)
}

// compile validates f as the Badger store does (usagelog.Filter.Validate)
// except for the cursor, which is this store's.
func compile(f usagelog.Filter) (query, error) {
	var q query
	cur := f.Cursor
	f.Cursor = ""
	uq, err := f.Compile()
	if err != nil {
		return q, err
	}
	q.limit = f.Limit
	if q.limit == 0 {
		q.limit = usagelog.DefaultLimit
	}
	if f.KeyID != "" {
		q.add("key_id = ?", f.KeyID)
	}
	if f.Method != "" {
		// Bytes compared case-insensitively as ASCII (the filter is
		// printable ASCII): LATIN1 decodes any bytes.
		q.add("upper(convert_from(method, 'LATIN1')) = ?", strings.ToUpper(f.Method))
	}
	switch f.Code {
	case "":
	case "none":
		q.add("code = ?", "")
	default:
		q.add("code = ?", f.Code)
	}
	if lo, hi, _ := usagelog.ParseStatusFilter(f.Status); hi != 0 {
		q.add("status BETWEEN ? AND ?", lo, hi)
	}
	if uq.HasIP {
		// Addresses are stored as netip.Addr.String() writes them: a
		// v4-mapped one as ::ffff:a.b.c.d, so both spellings are asked for.
		forms := []string{uq.IP.String()}
		if uq.IP.Is4() {
			forms = append(forms, netip.AddrFrom16(uq.IP.As16()).String())
		}
		q.add("ip = ANY(?)", forms)
	}
	if f.PathPrefix != "" {
		q.add("substring(path from 1 for ?) = ?", len(f.PathPrefix), []byte(f.PathPrefix))
	}
	if !f.From.IsZero() {
		q.add("time_ns >= ?", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		q.add("time_ns < ?", f.To.UnixNano())
	}
	if cur != "" {
		id, ok := parseCursor(cur)
		if !ok {
			return q, &usagelog.FilterError{Field: "cursor", Message: "not a cursor this server issued"}
		}
		q.add("id < ?", id)
	}
	return q, nil
}

func (q *query) sql(limit int) string {
	var b strings.Builder
	b.WriteString("SELECT time_ns, id, key_id, ip, method, path, status, code, entry_id, latency_us, node, secret_hint FROM usage_log")
	if len(q.where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(q.where, " AND "))
	}
	b.WriteString(" ORDER BY id DESC LIMIT ")
	b.WriteString(strconv.Itoa(limit))
	return b.String()
}

// page reads up to limit records of q, calling fn for each; it returns
// the id of the last one and how many it read.
func (s *Store) page(ctx context.Context, q *query, limit int, fn func(r *usagelog.Record, id int64) error) (lastID int64, n int, err error) {
	rows, err := s.pool.Query(ctx, q.sql(limit), q.args...)
	if err != nil {
		return 0, 0, s.readErr(err)
	}
	defer rows.Close()
	var r usagelog.Record
	var status int32
	var t int64
	var method, path []byte
	for rows.Next() {
		if err := rows.Scan(&t, &lastID, &r.KeyID, &r.IP, &method, &path, &status, &r.Code, &r.EntryID, &r.LatencyUS, &r.Node, &r.SecretHint); err != nil {
			return 0, n, s.readErr(err)
		}
		r.Time, r.Status = time.Unix(0, t).UTC(), int(status)
		r.Method, r.Path = string(method), string(path)
		r.ReportOnly = usagelog.IsReportOnly(r.Status, r.Code)
		if err := fn(&r, lastID); err != nil {
			return 0, n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, n, s.readErr(err)
	}
	return lastID, n, nil
}

// QueryLogs returns the fleet's records matching f, newest first (in the
// reverse of the order they were written: for one daemon, the reverse of
// the order AppendLog received them), f.Limit at a time. A record
// is visible once its batch is written: at most FlushInterval after
// AppendLog, or at once after FlushLogs, on every daemon. An invalid
// filter gives a *usagelog.FilterError; an unreachable database an error
// wrapping store.ErrUnavailable. Items is never nil.
func (s *Store) QueryLogs(ctx context.Context, f usagelog.Filter) (usagelog.Page, error) {
	q, err := compile(f)
	if err != nil {
		return usagelog.Page{}, err
	}
	if err := s.usable(ctx); err != nil {
		return usagelog.Page{}, err
	}
	page := usagelog.Page{Items: make([]usagelog.Record, 0, min(q.limit, 128))}
	var id int64
	more := false
	_, _, err = s.page(ctx, &q, q.limit+1, func(r *usagelog.Record, rid int64) error {
		if len(page.Items) == q.limit {
			more = true
			return nil
		}
		page.Items = append(page.Items, *r)
		id = rid
		return nil
	})
	if err != nil {
		return usagelog.Page{}, err
	}
	if more {
		page.NextCursor = cursorOf(id)
	}
	return page, nil
}

// exportBatch is the number of rows ExportCSV reads per query: memory
// stays constant and no query holds a snapshot for the whole export.
const exportBatch = 10000

// ExportCSV writes every record matching f (f.Limit is ignored; f.Cursor
// is honoured), newest first, as CSV to w in exactly the Badger store's
// format (usagelog.CSVWriter, key names from names). It reads in batches
// with a keyset cursor, so memory does not grow with the number of rows.
// It returns the number of rows written, header excluded.
func (s *Store) ExportCSV(ctx context.Context, w io.Writer, f usagelog.Filter, names usagelog.KeyNames) (int, error) {
	f.Limit = 0
	q, err := compile(f)
	if err != nil {
		return 0, err
	}
	if err := s.usable(ctx); err != nil {
		return 0, err
	}
	cw := usagelog.NewCSVWriter(w, names)
	base := len(q.where)
	for {
		id, n, err := s.exportPage(ctx, &q, cw)
		if err != nil {
			return cw.Rows(), err
		}
		if n < exportBatch {
			break
		}
		if s.closed.Load() {
			return cw.Rows(), store.ErrClosed
		}
		// Next batch: after this one's last row (replacing our own
		// cursor condition, keeping the caller's).
		q.where, q.args = q.where[:base], q.args[:countArgs(q.where[:base])]
		q.add("id < ?", id)
	}
	return cw.Rows(), cw.Flush()
}

// exportPage writes up to exportBatch rows of q to cw and returns the id
// of the last one and how many it wrote. It reads the rows' raw values
// into one reused usagelog.CSVRow: no string or Record per row (Scan
// allocated eight strings a row, the export's main cost).
func (s *Store) exportPage(ctx context.Context, q *query, cw *usagelog.CSVWriter) (lastID int64, n int, err error) {
	rows, err := s.pool.Query(ctx, q.sql(exportBatch), q.args...)
	if err != nil {
		return 0, 0, s.readErr(err)
	}
	defer rows.Close()
	var row usagelog.CSVRow
	for rows.Next() {
		fds, v := rows.FieldDescriptions(), rows.RawValues()
		if len(v) != 12 {
			return 0, n, fmt.Errorf("store: export: %d columns, want 12", len(v))
		}
		var st, lat int64
		var ok [4]bool
		var t int64
		t, ok[0] = rawInt(fds[0], v[0])
		lastID, ok[1] = rawInt(fds[1], v[1])
		st, ok[2] = rawInt(fds[6], v[6])
		lat, ok[3] = rawInt(fds[9], v[9])
		if ok != [4]bool{true, true, true, true} {
			return 0, n, fmt.Errorf("store: export: an integer column in an unexpected format")
		}
		row.Time = time.Unix(0, t)
		row.KeyID, row.Method, row.Path = v[2], v[4], v[5]
		row.IP = netip.Addr{}
		if len(v[3]) > 0 {
			row.IP, _ = netip.ParseAddr(string(v[3]))
		}
		row.Status, row.Code, row.EntryID = int(st), v[7], v[8]
		row.LatencyUS = uint64(max(lat, 0))
		row.Node, row.Hint = v[10], v[11]
		if err := cw.WriteRow(&row); err != nil {
			return 0, n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, n, s.readErr(err)
	}
	return lastID, n, nil
}

// rawInt decodes an integer column (int4 or int8) in either wire format.
func rawInt(fd pgconn.FieldDescription, b []byte) (int64, bool) {
	if fd.Format == pgx.TextFormatCode {
		v, err := strconv.ParseInt(string(b), 10, 64)
		return v, err == nil
	}
	switch len(b) {
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))), true
	case 8:
		return int64(binary.BigEndian.Uint64(b)), true
	}
	return 0, false
}

func countArgs(where []string) int {
	n := 0
	for _, w := range where {
		n += strings.Count(w, "$")
	}
	return n
}

// EntryHits counts the fleet's records of the key at or after since per
// allowlist entry that matched them, with the newest one's time.
func (s *Store) EntryHits(ctx context.Context, keyID string, since time.Time) (map[string]usagelog.Hits, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT entry_id, count(*), max(time_ns) FROM usage_log
		WHERE key_id = $1 AND time_ns >= $2 AND entry_id <> '' GROUP BY entry_id`, keyID, clampTime(since))
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	hits := map[string]usagelog.Hits{}
	for rows.Next() {
		var id string
		var n, last int64
		if err := rows.Scan(&id, &n, &last); err != nil {
			return nil, s.readErr(err)
		}
		hits[id] = usagelog.Hits{Count: int(n), LastSeen: time.Unix(0, last).UTC()}
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr(err)
	}
	return hits, nil
}

// Traffic returns the distinct client addresses of the fleet's records of
// the key at or after since that its allowlist decided
// (usagelog.CountsForAllowlist), at most limit of them, the most recently
// written first, and whether others were left out: the records are read
// newest first and counted with usagelog.AddTraffic, as the Badger store
// does.
func (s *Store) Traffic(ctx context.Context, keyID string, since time.Time, limit int) ([]usagelog.AddrStat, bool, error) {
	if err := s.usable(ctx); err != nil {
		return nil, false, err
	}
	limit = min(max(limit, 1), usagelog.MaxTrafficAddrs)
	rows, err := s.pool.Query(ctx, `SELECT ip, time_ns, status, code, entry_id FROM usage_log
		WHERE key_id = $1 AND time_ns >= $2 AND code IN ('', $3) ORDER BY id DESC`, keyID, clampTime(since), usagelog.CodeIPNotAllowed)
	if err != nil {
		return nil, false, s.readErr(err)
	}
	defer rows.Close()
	var out []usagelog.AddrStat
	at := map[netip.Addr]int{}
	truncated := false
	var ipText, code, entryID string
	var t int64
	var status int32
	for rows.Next() {
		if err := rows.Scan(&ipText, &t, &status, &code, &entryID); err != nil {
			return nil, false, s.readErr(err)
		}
		ip, err := netip.ParseAddr(ipText)
		if err != nil {
			continue
		}
		var kept bool
		out, kept = usagelog.AddTraffic(out, at, limit, ip, time.Unix(0, t).UTC(), int(status), code, []byte(entryID))
		truncated = truncated || !kept
	}
	if err := rows.Err(); err != nil {
		return nil, false, s.readErr(err)
	}
	return out, truncated, nil
}
