package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Every flag is a member of the config file, log_retention included; a
// second JSON object after the first, an unknown member and a syntax
// error are refused, with the line and column.
func TestConfigFileStrict(t *testing.T) {
	serve := func(cfg string, env ...string) (int, string, string) {
		t.Helper()
		return runKeygate(t, env, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", writeConfig(t, cfg))
	}
	for _, tt := range []struct{ cfg, want string }{
		{`{"log_retention": "48x"}`, `line 1, column 19: "log_retention": "48x" is not a duration: want a Go duration such as 720h`},
		{"{\"routes\": []}\n{\"addr\": \"x\"}", "line 2, column 1: more after the settings object"},
		{"{\n  \"addr\": \"127.0.0.1:0\",\n  \"max_conns\": 10,,\n}", "line 3, column 19"},
		{`{"log_retentoin": "48h"}`, `"log_retentoin": not a setting`},
		{`{"min_free_space": "64 mebibytes"}`, "want bytes (67108864) or a number with a unit: 64MiB"},
		{`{"trusted_proxies": "127.0.0.5/8"}`, "did you mean 127.0.0.0/8"},
		{`[]`, "want a JSON object"},
		{`{"socket_mode": "rw"}`, `"socket_mode": "rw" is not a file mode: want octal permission bits from 0001 to 0777`},
		{`{"admin_addr": "unix:"}`, `admin-addr "unix:": a Unix socket address needs a path`},
	} {
		code, _, errOut := serve(tt.cfg)
		assert.Equal(t, 2, code, tt.cfg)
		assert.Contains(t, errOut, tt.want, tt.cfg)
	}

	d := startKeygate(t, t.TempDir(), nil, "--config", writeConfig(t,
		`{"log_retention": "48h", "min_free_space": "1MiB", "max_conns": 50, "admin_token": "file-token-0123456789abcdef", "log_format": "json", "real_ip_headers": []}`))
	out := waitOutput(t, d, "keygate started")
	assert.Contains(t, out, `"log_retention":"48h0m0s"`)
	assert.Contains(t, out, `"min_free_space":"1048576 bytes"`)
	assert.Equal(t, 201, call(t, "POST", d.admin+"/v1/keys", "file-token-0123456789abcdef", map[string]any{"name": "k"}).status)
}

// A bad value exits 2 whether it comes from a flag, the environment or
// the file, and says the form expected; unknown KEYGATE_* variables are
// warned about.
func TestEnvironmentSettings(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--log-retention", "30d"}, nil, "want a Go duration such as 720h"},
		{nil, []string{"KEYGATE_LOG_RETENTION=30d"}, "KEYGATE_LOG_RETENTION=\"30d\": \"30d\" is not a duration: want a Go duration such as 720h"},
		{[]string{"--min-free-space", "lots"}, nil, "64MiB"},
		{nil, []string{"KEYGATE_MIN_FREE_SPACE=lots"}, "64MiB"},
		{nil, []string{"KEYGATE_MAX_CONNS=many"}, "not a whole number"},
		{[]string{"--trusted-proxies", "nonsense"}, nil, "trusted-proxies"},
		{nil, []string{"KEYGATE_TRUSTED_PROXIES=nonsense"}, "trusted-proxies"},
		{[]string{"--socket-mode", "0999"}, nil, `"0999" is not a file mode`},
		{nil, []string{"KEYGATE_SOCKET_MODE=1777"}, `KEYGATE_SOCKET_MODE="1777": "1777" is not a file mode`},
	} {
		code, _, errOut := runKeygate(t, tt.env, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, tt.args...)...)
		assert.Equal(t, 2, code, "%v %v: %s", tt.args, tt.env, errOut)
		assert.Contains(t, errOut, tt.want, "%v %v", tt.args, tt.env)
	}

	d := startKeygate(t, t.TempDir(), []string{"KEYGATE_LOG_RETENTOIN=48h"})
	assert.Contains(t, waitOutput(t, d, "keygate started"), "environment variable KEYGATE_LOG_RETENTOIN is not a keygate setting")
}

// The admin commands' own flags (filters, names) never come from the
// environment: a KEYGATE_STATUS left there silently filtered an export.
func TestCLIFiltersNotFromEnvironment(t *testing.T) {
	d := startKeygate(t, t.TempDir(), []string{"KEYGATE_ADMIN_TOKEN=" + sigToken})
	for range 3 {
		checkIP(t, d, "kg_nope", "203.0.113.5")
	}
	for exportedRows(t, d) < 3 {
		time.Sleep(20 * time.Millisecond)
	}
	code, stdout, stderr := runKeygate(t, []string{"KEYGATE_STATUS=403", "KEYGATE_KEY_ID=nope", "KEYGATE_ADMIN_TOKEN=" + sigToken, "KEYGATE_SERVER=" + d.admin},
		"logs", "export")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, 4, strings.Count(stdout, "\n"), stdout)
}

// waitOutput waits (up to 10 s) for the daemon's output to contain s, and
// returns it: its log (stderr) may lag behind the banner (stdout).
func waitOutput(t *testing.T, d *kgProc, s string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.Output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", s, d.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d.Output()
}
