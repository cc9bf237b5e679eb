package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShutdownDelay: told to stop, a daemon with a ShutdownDelay keeps
// answering, /readyz with 503 "shutting down" and checks as before, until
// the delay is over; only then are connections refused.
func TestShutdownDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	ts := startServer(t, func(c *Config) { c.ShutdownDelay = delay })
	_, secret := ts.createKey(t, map[string]any{"name": "k"})
	wantStatus(t, do(t, "GET", ts.checkURL+"/readyz", nil), http.StatusOK, "readyz before the stop")

	stopped := time.Now()
	ts.cancel()
	require.Eventually(t, func() bool {
		return do(t, "GET", ts.checkURL+"/readyz", nil).status == http.StatusServiceUnavailable
	}, time.Second, 10*time.Millisecond, "/readyz never answered 503 after the stop")
	r := do(t, "GET", ts.checkURL+"/readyz", nil)
	assert.Contains(t, string(r.body), "shutting down")
	wantStatus(t, ts.check(t, secret, "203.0.113.5", ""), http.StatusOK, "a check during the delay")

	require.NoError(t, <-ts.done)
	ts.done <- nil // for the cleanup's receive
	assert.GreaterOrEqual(t, time.Since(stopped), delay, "Serve returned before the delay was over")
	_, err := http.Get(ts.checkURL + "/readyz")
	assert.Error(t, err, "the listener still accepted after Serve returned")
}
