package usagelog

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
