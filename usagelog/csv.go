package usagelog

import (
	"bufio"
	"bytes"
	"io"
	"net/netip"
	"strconv"
	"time"
)

// CSVHeader is the header row of a CSV export.
// Columns are only ever added at the end.
const CSVHeader = "time,key_id,ip,method,path,status,code,entry_id,latency_us,secret_hint,node,key_name"

// KeyNames returns the current name of the key with id keyID, for an
// export's key_name column, or "" when there is no such key. A CSVWriter
// asks it at most once per distinct key id, and never for the empty id.
type KeyNames func(keyID string) string

// CSVRow is one record as borrowed bytes, so that a backend can write rows
// straight from its own buffers without building a Record.
type CSVRow struct {
	Time      time.Time
	KeyID     []byte
	IP        netip.Addr
	Method    []byte
	Path      []byte
	Status    int
	Code      []byte
	EntryID   []byte
	LatencyUS uint64
	Hint      []byte
	Node      []byte
}

// AppendCSVRow appends r, with keyName in the key_name column, as one CSV
// row: RFC 4180 quoting, a CRLF line end, the time in RFC 3339 UTC with
// nanoseconds. Every backend's rows are written so (CSVWriter), so
// exports are byte-identical whatever the store.
func AppendCSVRow(b []byte, r *CSVRow, keyName []byte) []byte {
	b = appendCSVCells(b, r)
	b = AppendCSVField(b, keyName)
	return append(b, '\r', '\n')
}

// appendCSVCells appends r's cells up to node and the comma after it.
func appendCSVCells(b []byte, r *CSVRow) []byte {
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ',')
	b = AppendCSVField(b, r.KeyID)
	b = append(b, ',')
	if r.IP.IsValid() {
		b = r.IP.AppendTo(b)
	}
	b = append(b, ',')
	b = AppendCSVField(b, r.Method)
	b = append(b, ',')
	b = AppendCSVField(b, r.Path)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ',')
	b = AppendCSVField(b, r.Code)
	b = append(b, ',')
	b = AppendCSVField(b, r.EntryID)
	b = append(b, ',')
	b = strconv.AppendUint(b, r.LatencyUS, 10)
	b = append(b, ',')
	b = AppendCSVField(b, r.Hint)
	b = append(b, ',')
	b = AppendCSVField(b, r.Node)
	return append(b, ',')
}

// AppendCSVField appends v as one CSV cell, quoted if it holds a comma,
// quote, CR or LF or starts with a space (RFC 4180), and safe to open in a
// spreadsheet whichever of comma, semicolon or tab it splits lines on
// (locales whose list separator is ";" split on it, and so do import
// dialogs with "tab" ticked): every place where a field could begin, the
// cell's start and the byte after each ',', ';', tab, CR or LF inside it,
// gets a ' before a byte a spreadsheet reads as the start of a formula
// (=, +, -, @, tab, CR; OWASP), or before quotes followed by one (a
// spreadsheet strips a quote that opens a field). So
// "/x;=2+3;@SUM(1)" is written "/x;'=2+3;'@SUM(1)".
//
// A ' is inserted rather than the separator replaced: the path stays
// readable and the change is visible where it is made, and ordinary
// paths (";jsessionid=", "a,b", "-" inside a segment) are untouched,
// because a separator is followed by a dangerous byte only in a crafted
// value.
func AppendCSVField(b, v []byte) []byte {
	quote := len(v) > 0 && v[0] == ' ' || bytes.ContainsAny(v, ",\"\r\n")
	if !quote && !needsGuard(v) {
		return append(b, v...)
	}
	if quote {
		b = append(b, '"')
	}
	for j, c := range v {
		if guardAt(v, j) {
			b = append(b, '\'')
		}
		if c == '"' {
			b = append(b, '"')
		}
		b = append(b, c)
	}
	if quote {
		b = append(b, '"')
	}
	return b
}

func needsGuard(v []byte) bool {
	for j := range v {
		if guardAt(v, j) {
			return true
		}
	}
	return false
}

// guardAt reports whether v[j] begins a field, when the line is split on
// any of the separators, that a spreadsheet reads as a formula: a
// dangerous byte, or quotes (which it strips) followed by one.
func guardAt(v []byte, j int) bool {
	if j > 0 {
		switch v[j-1] {
		case ',', ';', '\t', '\r', '\n':
		default:
			return false
		}
	}
	k := j
	for k < len(v) && v[k] == '"' {
		k++
	}
	return k < len(v) && formulaStart(v[k])
}

func formulaStart(c byte) bool {
	return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r'
}

// CSVWriter writes a CSV export: the header row first, then one row per
// call, buffered. Memory use grows with the number of distinct key ids
// (their names are kept), not with the number of rows. It is not safe
// for concurrent use.
type CSVWriter struct {
	bw   *bufio.Writer
	row  []byte
	rows int
	err  error

	names KeyNames
	// known caches names' answers by key id as key_name cells (encoded
	// once per key, not once per row); lastID and lastCell the latest
	// one, as a run of rows often has one key.
	known            map[string][]byte
	lastID, lastCell []byte
}

// NewCSVWriter returns a CSVWriter on w and writes the header row. The
// key_name column comes from names (empty throughout when nil).
func NewCSVWriter(w io.Writer, names KeyNames) *CSVWriter {
	c := &CSVWriter{bw: bufio.NewWriterSize(w, 64<<10), names: names}
	_, c.err = c.bw.WriteString(CSVHeader + "\r\n")
	return c
}

// WriteRow writes one row, AppendCSVRow's, with the name of key r.KeyID
// as key_name; it returns the first write error, after which nothing
// more is written.
func (c *CSVWriter) WriteRow(r *CSVRow) error {
	if c.err != nil {
		return c.err
	}
	c.row = appendCSVCells(c.row[:0], r)
	c.row = append(c.row, c.keyNameCell(r.KeyID)...)
	c.row = append(c.row, '\r', '\n')
	if _, c.err = c.bw.Write(c.row); c.err == nil {
		c.rows++
	}
	return c.err
}

// keyNameCell returns the key_name cell of key id, asking names once
// per id.
func (c *CSVWriter) keyNameCell(id []byte) []byte {
	if len(id) == 0 || c.names == nil {
		return nil
	}
	if c.lastID != nil && bytes.Equal(id, c.lastID) {
		return c.lastCell
	}
	cell, ok := c.known[string(id)]
	if !ok {
		if c.known == nil {
			c.known = make(map[string][]byte)
		}
		sid := string(id)
		cell = AppendCSVField(nil, []byte(c.names(sid)))
		c.known[sid] = cell
	}
	c.lastID = append(c.lastID[:0], id...)
	c.lastCell = cell
	return cell
}

// WriteRecord writes rec as one row, as WriteRow does. An IP that does
// not parse is written empty.
func (c *CSVWriter) WriteRecord(rec *Record) error {
	ip, _ := netip.ParseAddr(rec.IP)
	return c.WriteRow(&CSVRow{
		Time: rec.Time, KeyID: []byte(rec.KeyID), IP: ip, Method: []byte(rec.Method), Path: []byte(rec.Path),
		Status: rec.Status, Code: []byte(rec.Code), EntryID: []byte(rec.EntryID), LatencyUS: uint64(max(rec.LatencyUS, 0)),
		Hint: []byte(rec.SecretHint),
		Node: []byte(rec.Node),
	})
}

// Rows is the number of rows written, header excluded.
func (c *CSVWriter) Rows() int { return c.rows }

// Flush writes what is buffered and returns the first error.
func (c *CSVWriter) Flush() error {
	if c.err != nil {
		return c.err
	}
	c.err = c.bw.Flush()
	return c.err
}
