package usagelog

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCSVFormulaInjection(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/v1/x", "/v1/x"},
		{"=1+1", "'=1+1"},
		{"+1", "'+1"},
		{"-1", "'-1"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "\"'\rx\""},
		{"=HYPERLINK(\"http://evil\",\"x\")", "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""},
		{"a,b", "\"a,b\""},
		{"a\"b", "\"a\"\"b\""},
		{"a\nb", "\"a\nb\""},
		{" lead", "\" lead\""},
		{"x=1", "x=1"},
		// A field may begin after a separator inside the cell.
		{"/x;=2+3;@SUM(1)", "/x;'=2+3;'@SUM(1)"},
		{"/a\t=1", "/a\t'=1"},
		{"/p,=HYPERLINK(1)", "\"/p,'=HYPERLINK(1)\""},
		{"/a;\"=1", "\"/a;'\"\"=1\""},
		{"/a\n+1", "\"/a\n'+1\""},
		{"/a;\t=1", "/a;'\t'=1"},
		{"/search;jsessionid=abc,x-y", "\"/search;jsessionid=abc,x-y\""},
	} {
		got := string(AppendCSVField(nil, []byte(tc.in)))
		assert.Equal(t, tc.want, got, "AppendCSVField(%q)", tc.in)
	}
}

func TestCSVWriterKeyNames(t *testing.T) {
	var buf bytes.Buffer
	asked := map[string]int{}
	cw := NewCSVWriter(&buf, func(id string) string {
		asked[id]++
		return map[string]string{"key_a": "=cmd|' /C calc'!A0", "key_b": "a;b,\"c\"\nd"}[id]
	})
	ts := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, id := range []string{"key_a", "key_a", "key_b", "", "key_gone", "key_a", "key_b", "key_gone"} {
		require.NoError(t, cw.WriteRow(&CSVRow{Time: ts, KeyID: []byte(id), Status: 200}))
	}
	require.NoError(t, cw.Flush())
	assert.Equal(t, map[string]int{"key_a": 1, "key_b": 1, "key_gone": 1}, asked, "once per distinct id, never for the empty one")
	rows, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 9)
	assert.Equal(t, "key_name", rows[0][len(rows[0])-1], "the last column")
	var got []string
	for _, r := range rows[1:] {
		require.Len(t, r, len(rows[0]))
		got = append(got, r[len(r)-1])
	}
	assert.Equal(t, []string{"'=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0", "a;b,\"c\"\nd", "", "", "'=cmd|' /C calc'!A0", "a;b,\"c\"\nd", ""}, got)

	buf.Reset()
	cw = NewCSVWriter(&buf, nil)
	require.NoError(t, cw.WriteRecord(&Record{Time: ts, KeyID: "key_a", IP: "203.0.113.5", Status: 401, LatencyUS: -1}))
	require.NoError(t, cw.Flush())
	assert.Equal(t, CSVHeader+"\r\n2025-01-02T03:04:05.000000006Z,key_a,203.0.113.5,,,401,,,0,,,\r\n", buf.String(), "no names: an empty key_name")
}
