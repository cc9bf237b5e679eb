package server

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogStats(t *testing.T) {
	ts := startServer(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "k", "scopes": []string{"orders:read"}})
	_, other := ts.createKey(t, map[string]any{"name": "other"})
	for range 3 {
		wantStatus(t, ts.check(t, secret, "198.51.100.1", "orders:read"), 200, "allowed")
	}
	wantStatus(t, ts.check(t, secret, "198.51.100.1", "orders:write"), 403, "scope")
	wantStatus(t, ts.check(t, "kg_live_nope", "198.51.100.1", ""), 401, "unknown key")
	wantStatus(t, ts.check(t, other, "198.51.100.1", ""), 200, "other key")

	now := time.Now().UTC()
	from := now.Add(-time.Hour).Truncate(time.Minute)
	to := from.Add(2 * time.Hour)
	path := "/v1/logs/stats?bucket=5m&from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
	all := ts.admin(t, "GET", path, nil)
	wantStatus(t, all, 200, "stats")
	m := all.json(t)
	assert.Equal(t, "5m0s", m["bucket"])
	assert.Equal(t, 300.0, m["bucket_seconds"])
	assert.Len(t, m["buckets"], 24)
	assert.Equal(t, map[string]any{"start": from.Format(time.RFC3339), "allowed": 4.0, "reported": 0.0, "unauthorized": 1.0, "forbidden": 1.0, "other": 0.0}, m["totals"])
	var sum float64
	for _, b := range m["buckets"].([]any) {
		sum += b.(map[string]any)["allowed"].(float64)
	}
	assert.Equal(t, 4.0, sum, "the buckets add up to the totals")

	one := ts.admin(t, "GET", path+"&key_id="+id, nil).json(t)
	assert.Equal(t, id, one["key_id"])
	assert.Equal(t, map[string]any{"start": from.Format(time.RFC3339), "allowed": 3.0, "reported": 0.0, "unauthorized": 0.0, "forbidden": 1.0, "other": 0.0}, one["totals"])

	// Defaults: the last 24 h in 1 h buckets.
	def := ts.admin(t, "GET", "/v1/logs/stats", nil).json(t)
	assert.Equal(t, "1h0m0s", def["bucket"])
	assert.Len(t, def["buckets"], 24)
	assert.Equal(t, 4.0, def["totals"].(map[string]any)["allowed"])

	for _, c := range []struct{ query, want string }{
		{"bucket=1s", "bucket: 1s is not between 1m0s and 24h"},
		{"bucket=25h", "bucket: 25h0m0s is not between"},
		{"bucket=soon", `bucket "soon": want a duration`},
		{"bucket=1m&from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z", "bucket: 1m0s makes 1440 buckets"},
		{"from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "to: not after from"},
		{"from=yesterday", `from "yesterday": want an RFC 3339 time`},
		{"to=2300-01-01T00:00:00Z", "to \"2300-01-01T00:00:00Z\" is outside the range"},
		{"key_id=" + strings.Repeat("k", 200), "key_id: longer than 128 bytes"},
	} {
		r := ts.admin(t, "GET", "/v1/logs/stats?"+c.query, nil)
		require.Equal(t, 400, r.status, "%s: %s", c.query, r.body)
		assert.Equal(t, "BAD_REQUEST", r.errCode(t), c.query)
		assert.Contains(t, r.json(t)["error"].(map[string]any)["message"], c.want, c.query)
	}
	wantStatus(t, ts.admin(t, "POST", "/v1/logs/stats", nil), 405, "POST")
}
