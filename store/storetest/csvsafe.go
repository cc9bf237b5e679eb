package storetest

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/usagelog"
)

// hostileCells are values a client controls (path, method) or that reach
// the export from a key (ids, codes, names), written to plant a formula behind a
// separator: before, only a cell's first byte was guarded, so "/x;=2+3"
// opened a formula in a spreadsheet that splits on ';'.
var hostileCells = []string{
	"/x;=2+3;@SUM(1)", "/a\t=1", "-cmd", "/p,=HYPERLINK(\"http://evil\",\"x\")",
	"/a\r=1", "/a\n=1", "/a\r\n@x", "/a;+1", "/a;-1", "/a,@x", "/a;\"=1", "/a\t\"=1\"",
	"/a;;=1", "/a;\t=1", "/a,\t=1", "=1;=2,=3\t=4", "/a; =1", "/a;'=1", "\t\t=1", "@", ";=", ",=", "\t=",
	"/x\";=1", "/x\"\t@1", "/search;jsessionid=abc",
}

// formulaStarts reports whether a field a spreadsheet would show begins
// with a byte that starts a formula.
func formulaStarts(f string) bool {
	return f != "" && strings.IndexByte("=+-@\t\r", f[0]) >= 0
}

// testCSVSafeUnderEverySeparator exports records whose text fields are
// hostile and reads the file as a spreadsheet might: with encoding/csv
// splitting on ',', ';' and tab, and naively split on each of them after
// breaking lines at CR and LF. No field may begin a formula.
func testCSVSafeUnderEverySeparator(t *testing.T, h Harness) {
	s := open(t, h)
	now := time.Now()
	for i, v := range hostileCells {
		s.AppendLog(&usagelog.Entry{Time: now.Add(time.Duration(i) * time.Millisecond), KeyID: v, EntryID: v, Method: []byte(v), Path: []byte(v),
			Status: 401, Code: v, IP: netip.MustParseAddr("203.0.113.5")})
	}
	require.NoError(t, s.FlushLogs())
	var buf bytes.Buffer
	// Each key is named as its id.
	n, err := s.ExportCSV(context.Background(), &buf, usagelog.Filter{}, func(id string) string { return id })
	require.NoError(t, err)
	require.Equal(t, len(hostileCells), n)
	out := buf.String()

	for _, sep := range []rune{',', ';', '\t'} {
		r := csv.NewReader(strings.NewReader(out))
		r.Comma, r.LazyQuotes, r.FieldsPerRecord = sep, true, -1
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "encoding/csv with separator %q", sep)
			for _, f := range rec {
				if formulaStarts(f) {
					t.Errorf("encoding/csv with separator %q: field %q begins a formula", sep, f)
				}
			}
		}
		for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
			for _, f := range strings.Split(line, string(sep)) {
				if formulaStarts(f) {
					t.Errorf("split on %q: field %q of line %q begins a formula", sep, f, line)
				}
				// A spreadsheet strips a quote that opens a field.
				if g := strings.TrimLeft(f, "\""); g != f && formulaStarts(g) {
					t.Errorf("split on %q: field %q of line %q begins a formula behind its quote", sep, f, line)
				}
			}
		}
	}
	// Read back with the RFC 4180 reader, each cell is the value with
	// its guards.
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	for i, row := range rows[1:] {
		v := hostileCells[len(hostileCells)-1-i] // newest first
		want := strings.ReplaceAll(CSVCell(v), "\r\n", "\n")
		assert.Equal(t, []string{want, want, want, want}, []string{row[1], row[3], row[4], row[11]}, "row %d (%q)", i+1, v)
	}
}
