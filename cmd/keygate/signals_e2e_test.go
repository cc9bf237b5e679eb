package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sigToken = "signal-token-0123456789abcdef"

// checks sends n checks of secret (each one usage-log record).
func checks(t *testing.T, d *kgProc, secret string, n int) {
	t.Helper()
	for range n {
		require.Equal(t, 200, checkIP(t, d, secret, "203.0.113.5"))
	}
}

// exportedRows counts the usage-log records a daemon exports.
func exportedRows(t *testing.T, d *kgProc) int {
	t.Helper()
	r := call(t, "GET", d.admin+"/v1/logs/export.csv", sigToken, nil)
	require.Equal(t, 200, r.status, string(r.body))
	return bytes.Count(r.body, []byte("\n")) - 1 // the header row
}

// No signal but SIGKILL loses an acknowledged usage-log record: SIGHUP
// reloads, SIGUSR1, SIGUSR2 and SIGPIPE are ignored, and SIGTERM, SIGINT
// and SIGQUIT stop the daemon gracefully with exit status 0.
func TestSignalsLoseNoRecord(t *testing.T) {
	data := t.TempDir()
	env := []string{"KEYGATE_ADMIN_TOKEN=" + sigToken}
	d := startKeygate(t, data, env)
	r := call(t, "POST", d.admin+"/v1/keys", sigToken, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	require.Equal(t, 201, r.status, string(r.body))
	secret := r.obj(t)["secret"].(string)

	want := 0
	for _, stopSig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT} {
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE} {
			checks(t, d, secret, 50)
			want += 50
			d.Signal(sig)
		}
		checks(t, d, secret, 50)
		want += 50
		require.Equal(t, 200, call(t, "GET", d.url+"/healthz", "", nil).status, "alive after SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE")
		assert.NoError(t, d.stop(t, stopSig), "exit status after %v\n%s", stopSig, d.Output())
		assert.Contains(t, d.Output(), "signal="+stopSig.String())

		d = startKeygate(t, data, env)
		assert.Equal(t, want, exportedRows(t, d), "records after %v", stopSig)
	}
}

// SIGHUP applies a changed route rule, trusted-proxy list and log level,
// logs what changed, and keeps the running settings when the file is not
// valid.
func TestSIGHUPReloads(t *testing.T) {
	cfgPath := writeConfig(t, `{"routes":[{"prefix":"/a","scope":"a"}]}`)
	d := startKeygate(t, t.TempDir(), []string{"KEYGATE_ADMIN_TOKEN=" + sigToken}, "--config", cfgPath)
	r := call(t, "POST", d.admin+"/v1/keys", sigToken, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	require.Equal(t, 201, r.status, string(r.body))
	secret := r.obj(t)["secret"].(string)
	authz := func(uri string) int {
		return call(t, "GET", d.url+"/v1/authz", "", nil, "Authorization", "Bearer "+secret,
			"X-Forwarded-For", "203.0.113.5", "X-Forwarded-Uri", uri).status
	}
	// Not a trusted proxy yet: the peer, 127.0.0.1, is not allowed.
	require.Equal(t, 403, authz("/b"))

	hup := func(cfg, wantLog string) {
		t.Helper()
		require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
		before := len(d.Output())
		d.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(d.Output()[before:], wantLog) {
			require.True(t, time.Now().Before(deadline), "no %q in the log after SIGHUP:\n%s", wantLog, d.Output()[before:])
			time.Sleep(20 * time.Millisecond)
		}
	}
	hup(`{"trusted_proxies":["127.0.0.1"],"routes":[{"prefix":"/a","scope":"a"}],"log_level":"debug","log_retention":"48h"}`, "configuration reloaded")
	out := d.Output()
	assert.Contains(t, out, "trusted_proxies: [] -> [127.0.0.1]")
	assert.Contains(t, out, "log_level: info -> debug")
	assert.Contains(t, out, "log_retention: 720h0m0s -> 48h0m0s")
	assert.Equal(t, 200, authz("/b"), "trusted proxy applied")
	assert.Equal(t, 403, authz("/a"), "route kept")

	hup(`{"trusted_proxies":["127.0.0.1"],"routes":[{"method":"GETT","prefix":"/a","scope":"a"}]}`, "keeping the running settings")
	assert.Contains(t, d.Output(), `method \"GETT\"`)
	assert.Equal(t, 403, authz("/a"), "the bad file changed nothing")

	hup(`{"trusted_proxies":["127.0.0.1"],"routes":[]}`, "routes: 1 rules -> 0 rules")
	assert.Equal(t, 200, authz("/a"), "route removed")

	hup(`{"trusted_proxies":["127.0.0.1"],"max_conns":5}`, "take a restart")
	assert.Equal(t, 200, call(t, "GET", d.url+"/healthz", "", nil).status)
	assert.NoError(t, d.stop(t, syscall.SIGTERM), fmt.Sprint(d.Output()))
}
