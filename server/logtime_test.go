package server

import (
	"strings"
	"testing"
)

// TestLogTimeRange: from and to outside what the log's int64 nanoseconds
// hold are a 400 that gives the range, never a wrap (from=2300 selected
// every record) and never ignored (to=0001-01-01 read as "open").
func TestLogTimeRange(t *testing.T) {
	ts := startServer(t, nil)
	for _, tt := range []struct {
		query string
		ok    bool
	}{
		{"from=2300-01-01T00:00:00Z", false},
		{"to=1600-01-01T00:00:00Z", false},
		{"to=0001-01-01T00:00:00Z", false},
		{"from=0001-01-01T00:00:00Z", false},
		{"from=1677-12-31T23:59:59Z", false},
		{"to=2262-01-01T00:00:00.000000001Z", false},
		{"to=9999-12-31T23:59:59Z", false},
		{"from=-62135596800", false}, // Unix seconds of 0001-01-01
		{"from=9223372036854775807", false},
		{"to=-9223372036854775808", false},
		{"from=10000000000", false}, // year 2286
		{"from=1678-01-01T00:00:00Z", true},
		{"to=2262-01-01T00:00:00Z", true},
		{"from=1678-01-01T00:00:00Z&to=2262-01-01T00:00:00Z", true},
		{"from=-9214560000", true}, // 1678-01-01 in Unix seconds
		{"from=0", true},
	} {
		for _, p := range []string{"/v1/logs?", "/v1/logs/export.csv?"} {
			r := ts.admin(t, "GET", p+tt.query, nil)
			if tt.ok {
				wantStatus(t, r, 200, p+tt.query)
				continue
			}
			if r.status != 400 || r.errCode(t) != "BAD_REQUEST" || !strings.Contains(string(r.body), "use a time from 1678-01-01T00:00:00Z to 2262-01-01T00:00:00Z") {
				t.Errorf("%s%s: status %d %s, want 400 giving the range", p, tt.query, r.status, r.body)
			}
		}
	}
}
