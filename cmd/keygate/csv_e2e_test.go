package main

import (
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCSVExportOfHostileChecks goes through the product: a client with an
// invalid key sends checks whose path plants formulas behind separators;
// every check is logged, and the CLI's export opens safely whichever of
// ',', ';' or tab a spreadsheet splits on.
func TestCSVExportOfHostileChecks(t *testing.T) {
	data := t.TempDir()
	d := startKeygate(t, data, nil)
	paths := []string{"/x;=2+3;@SUM(1)", "/a\t=1", "-cmd", "/p,=HYPERLINK(\"http://evil\",\"x\")", "/a;\"=1", "/q\r\n=1", "/m;-1;+1"}
	for _, p := range paths {
		r := call(t, "POST", d.url+"/v1/check", "", map[string]string{"key": "kg_invalid", "ip": "203.0.113.5", "path": p, "method": "GET;=1"})
		if r.status != 401 {
			t.Fatalf("check with an invalid key and path %q: status %d %s, want 401", p, r.status, r.body)
		}
	}
	n := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && n < len(paths); time.Sleep(100 * time.Millisecond) {
		n = len(call(t, "GET", d.admin+"/v1/logs?status=401", d.token, nil).obj(t)["items"].([]any))
	}
	if n < len(paths) {
		t.Fatalf("%d logged checks after 3 s, want %d", n, len(paths))
	}
	csvPath := filepath.Join(t.TempDir(), "logs.csv")
	if out, err := cli(t, d, data, "logs", "export", "-o", csvPath); err != nil {
		t.Fatalf("logs export: %v\n%s", err, out)
	}
	b, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if !strings.Contains(out, "/x;'=2+3;'@SUM(1)") {
		t.Errorf("the hostile path is not in the export as /x;'=2+3;'@SUM(1):\n%s", out)
	}
	bad := func(f string) bool { return f != "" && strings.IndexByte("=+-@\t\r", f[0]) >= 0 }
	for _, sep := range []rune{',', ';', '\t'} {
		r := csv.NewReader(strings.NewReader(out))
		r.Comma, r.LazyQuotes, r.FieldsPerRecord = sep, true, -1
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("encoding/csv with separator %q: %v", sep, err)
			}
			for _, f := range rec {
				if bad(f) {
					t.Errorf("encoding/csv with separator %q: field %q begins a formula", sep, f)
				}
			}
		}
		for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
			for _, f := range strings.Split(line, string(sep)) {
				if bad(f) || bad(strings.TrimLeft(f, `"`)) {
					t.Errorf("split on %q: field %q of line %q begins a formula", sep, f, line)
				}
			}
		}
	}
}

// TestCLITimeFilterRange: the CLI passes an out-of-range time filter to
// the server and shows its 400, which gives the range; it used to print
// every record (from=2300 wrapped).
func TestCLITimeFilterRange(t *testing.T) {
	data := t.TempDir()
	d := startKeygate(t, data, nil)
	for _, args := range [][]string{{"--from", "2300-01-01T00:00:00Z"}, {"--to", "0001-01-01T00:00:00Z"}, {"--to", "1600-01-01T00:00:00Z"}} {
		for _, sub := range []string{"query", "export"} {
			out, err := cli(t, d, data, append([]string{"logs", sub}, args...)...)
			if err == nil || !strings.Contains(out, "use a time from 1678-01-01T00:00:00Z to 2262-01-01T00:00:00Z") {
				t.Errorf("logs %s %v: err %v, output %q; want a failure that gives the range", sub, args, err, out)
			}
		}
	}
}
