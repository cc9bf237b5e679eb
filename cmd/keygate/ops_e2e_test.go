package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runKeygate runs the binary with args (bounded: 20 s) and returns its exit
// code, stdout and stderr.
func runKeygate(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", args, err)
	}
	return code, o.String(), e.String()
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keygate.json")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

// Route rules that could never match (so failed open) and duplicate rules
// stop the daemon before it listens, naming the rule and the fix.
func TestServeRefusesBadRouteRules(t *testing.T) {
	for _, tt := range []struct{ rules, want string }{
		{`[{"method":"GET,POST","prefix":"/admin","scope":"admin"}]`, `routes[0] {method "GET,POST", prefix "/admin", scope "admin"}: method "GET,POST" names more than one method`},
		{`[{"prefix":"/x","scope":"x"},{"method":"GETT","prefix":"/admin","scope":"admin"}]`, `routes[1] {method "GETT"`},
		{`[{"prefix":"/ex","scope":""},{"prefix":"/ex","scope":"ex:read"}]`, `same method and prefix as routes[0]`},
		{`[{"prefix":"/a/../b","scope":"b"}]`, `prefix "/a/../b"`},
		{`[{"prefix":"/%61pi","scope":"b"}]`, `prefix "/%61pi"`},
		{`[{"prefix":"/q?x=1","scope":"b"}]`, `prefix "/q?x=1"`},
	} {
		cfg := writeConfig(t, `{"routes":`+tt.rules+`}`)
		code, out, errOut := runKeygate(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", cfg)
		assert.NotEqual(t, 0, code, tt.rules)
		assert.Contains(t, errOut, tt.want, tt.rules)
		assert.NotContains(t, out, "check API", "the daemon listened with %s", tt.rules)
	}
}

// A trusted-proxy range with host bits is refused with the range it
// probably meant; every address needs --trust-all-proxies.
func TestServeRefusesWideTrustedProxies(t *testing.T) {
	code, _, errOut := runKeygate(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--trusted-proxies", "127.0.0.5/8")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "did you mean 127.0.0.0/8")
	code, _, errOut = runKeygate(t, []string{"KEYGATE_TRUSTED_PROXIES=0.0.0.0/0"}, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir())
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "--trust-all-proxies")

	d := startKeygate(t, t.TempDir(), nil, "--trusted-proxies", "0.0.0.0/0,::/0", "--trust-all-proxies")
	assert.NotEmpty(t, d.url)
}
