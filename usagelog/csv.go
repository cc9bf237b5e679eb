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
const CSVHeader = "time,key_id,ip,method,path,status,code,entry_id,latency_us"

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
}

// AppendCSVRow appends r as one CSV row: RFC 4180 quoting, a CRLF line
// end, the time in RFC 3339 UTC with nanoseconds. Every backend writes its
// rows with it, so exports are byte-identical whatever the store.
func AppendCSVRow(b []byte, r *CSVRow) []byte {
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
	return append(b, '\r', '\n')
}

// AppendRecordCSV appends rec as one CSV row, as AppendCSVRow does. An IP
// that does not parse is written empty.
func AppendRecordCSV(b []byte, rec *Record) []byte {
	ip, _ := netip.ParseAddr(rec.IP)
	lat := uint64(0)
	if rec.LatencyUS > 0 {
		lat = uint64(rec.LatencyUS)
	}
	return AppendCSVRow(b, &CSVRow{
		Time: rec.Time, KeyID: []byte(rec.KeyID), IP: ip, Method: []byte(rec.Method), Path: []byte(rec.Path),
		Status: rec.Status, Code: []byte(rec.Code), EntryID: []byte(rec.EntryID), LatencyUS: lat,
	})
}

// AppendCSVField appends v as one CSV cell: prefixed with ' if a
// spreadsheet would read it as a formula (OWASP), quoted if it holds a
// comma, quote, CR or LF or starts with a space (RFC 4180).
func AppendCSVField(b, v []byte) []byte {
	inject := len(v) > 0 && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r')
	quote := len(v) > 0 && v[0] == ' ' || bytes.ContainsAny(v, ",\"\r\n")
	if !inject && !quote {
		return append(b, v...)
	}
	if quote {
		b = append(b, '"')
	}
	if inject {
		b = append(b, '\'')
	}
	for _, c := range v {
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

// CSVWriter writes a CSV export: the header row first, then one row per
// call, buffered. Memory use does not grow with the number of rows. It is
// not safe for concurrent use.
type CSVWriter struct {
	bw   *bufio.Writer
	row  []byte
	rows int
	err  error
}

// NewCSVWriter returns a CSVWriter on w and writes the header row.
func NewCSVWriter(w io.Writer) *CSVWriter {
	c := &CSVWriter{bw: bufio.NewWriterSize(w, 64<<10)}
	_, c.err = c.bw.WriteString(CSVHeader + "\r\n")
	return c
}

// WriteRow writes one row; it returns the first write error, after which
// nothing more is written.
func (c *CSVWriter) WriteRow(r *CSVRow) error {
	if c.err != nil {
		return c.err
	}
	c.row = AppendCSVRow(c.row[:0], r)
	if _, c.err = c.bw.Write(c.row); c.err == nil {
		c.rows++
	}
	return c.err
}

// WriteRecord writes rec as one row.
func (c *CSVWriter) WriteRecord(rec *Record) error {
	if c.err != nil {
		return c.err
	}
	c.row = AppendRecordCSV(c.row[:0], rec)
	if _, c.err = c.bw.Write(c.row); c.err == nil {
		c.rows++
	}
	return c.err
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
