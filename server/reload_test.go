package server

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Reload swaps routes and trusted proxies under running checks: each
// check sees one whole setting or the other; an invalid configuration
// changes nothing.
func TestConcurrentReload(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.AllowPrivateRanges = true })
	_, secret := ts.createKey(t, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "127.0.0.1"}}})
	withRoute := Config{AdminToken: testToken, Routes: []Route{{Prefix: "/a", Scope: "a"}}}
	without := Config{AdminToken: testToken}

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			c := &http.Client{}
			for !stop.Load() {
				req, _ := http.NewRequest("GET", ts.checkURL+"/v1/authz", nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				req.Header.Set("X-Forwarded-Uri", "/a/x")
				res, err := c.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				res.Body.Close()
				assert.Contains(t, []int{200, 403}, res.StatusCode)
			}
		})
	}
	for i := range 201 { // the last one with the route
		cfg := without
		if i%2 == 0 {
			cfg = withRoute
		}
		_, err := ts.Reload(cfg)
		require.NoError(t, err)
	}
	stop.Store(true)
	wg.Wait()

	changed, err := ts.Reload(withRoute)
	require.NoError(t, err)
	assert.Empty(t, changed, "the last reload already had the route")
	_, err = ts.Reload(Config{Routes: []Route{{Method: "GETT", Prefix: "/a"}}})
	require.Error(t, err)
	r := do(t, "GET", ts.checkURL+"/v1/authz", nil, "Authorization", "Bearer "+secret, "X-Forwarded-Uri", "/a/x")
	assert.Equal(t, 403, r.status, "the invalid reload changed nothing")
}
