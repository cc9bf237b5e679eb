package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogsByIPAndPathPrefix(t *testing.T) {
	ts := startServer(t, nil)
	_, secret := ts.createKey(t, map[string]any{"name": "k"})
	for i := range 3 {
		ts.check(t, secret, fmt.Sprintf("198.51.100.%d", i), "")
	}
	do(t, "POST", ts.checkURL+"/v1/check", map[string]string{"key": secret, "ip": "198.51.100.1", "method": "GET", "path": "/admin/users"})
	n := func(query string) int {
		t.Helper()
		r := ts.admin(t, "GET", "/v1/logs?"+query, nil)
		wantStatus(t, r, 200, query)
		return len(r.json(t)["items"].([]any))
	}
	assert.Equal(t, 2, n("ip=198.51.100.1"))
	assert.Equal(t, 2, n("ip=::ffff:198.51.100.1"), "v4-mapped is the v4 address")
	assert.Equal(t, 3, n("path_prefix=/ord"))
	assert.Equal(t, 1, n("path_prefix=/admin/&ip=198.51.100.1"))
	assert.Equal(t, 0, n("path_prefix=/ORD"), "a byte prefix: case counts")
	r := ts.admin(t, "GET", "/v1/logs/export.csv?ip=198.51.100.2", nil)
	wantStatus(t, r, 200, "export")
	assert.Len(t, strings.Split(strings.TrimSpace(string(r.body)), "\n"), 2, "header and one row: %s", r.body)
	for q, want := range map[string]string{
		"ip=198.51.100.0/24":                      `ip: "198.51.100.0/24" is not an IP address`,
		"path_prefix=" + strings.Repeat("a", 513): "path_prefix: longer than 512 bytes",
	} {
		for _, p := range []string{"/v1/logs?", "/v1/logs/export.csv?"} {
			r := ts.admin(t, "GET", p+q, nil)
			require.Equal(t, 400, r.status, "%s%s: %s", p, q, r.body)
			assert.Contains(t, r.json(t)["error"].(map[string]any)["message"], want)
		}
	}
}
