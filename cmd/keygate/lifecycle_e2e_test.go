package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jsonOut decodes the first JSON object a CLI command printed.
func jsonOut(t *testing.T, out string) map[string]any {
	t.Helper()
	start := strings.Index(out, "{")
	require.GreaterOrEqual(t, start, 0, "no JSON in %s", out)
	var m map[string]any
	require.NoError(t, json.NewDecoder(strings.NewReader(out[start:])).Decode(&m), out)
	return m
}

// TestCLILifecycle: --report-only on create and update, keys rotate
// --overlap, allowlist add --expires/--disabled, and allowlist import with
// a refused line (nothing saved) and then a good file.
func TestCLILifecycle(t *testing.T) {
	data := t.TempDir()
	d := startKeygate(t, data, nil)
	out, err := cli(t, d, data, "keys", "create", "--name", "ro", "--report-only", "--allow", "203.0.113.0/24")
	require.NoError(t, err, out)
	k := jsonOut(t, out)
	id, secret := k["id"].(string), k["secret"].(string)
	assert.Equal(t, true, k["report_only"])
	assert.Equal(t, 200, checkIP(t, d, secret, "198.51.100.9"), "report-only")

	out, err = cli(t, d, data, "keys", "update", id, "--report-only=false")
	require.NoError(t, err, out)
	assert.Equal(t, false, jsonOut(t, out)["report_only"])
	assert.Equal(t, 403, checkIP(t, d, secret, "198.51.100.9"), "enforced")

	out, err = cli(t, d, data, "allowlist", "add", id, "198.51.100.9", "--expires", "3h", "--label", "temp")
	require.NoError(t, err, out)
	e := jsonOut(t, out)
	assert.NotNil(t, e["expires_at"])
	assert.Equal(t, 200, checkIP(t, d, secret, "198.51.100.9"), "temporary entry")
	out, err = cli(t, d, data, "allowlist", "add", id, "192.0.2.0/24", "--disabled")
	require.NoError(t, err, out)
	assert.Equal(t, "disabled", jsonOut(t, out)["state"])
	assert.Equal(t, 403, checkIP(t, d, secret, "192.0.2.1"), "disabled entry")
	_, err = cli(t, d, data, "allowlist", "add", id, "192.0.2.9", "--expires", "yesterday")
	assert.Error(t, err, "a bad --expires")

	bad := filepath.Join(t.TempDir(), "bad.txt")
	require.NoError(t, os.WriteFile(bad, []byte("# office\n198.51.100.20,Office\n\n203.0.113.5/24 typo\n2001:db8::/48 VPN\n"), 0o600))
	out, err = cli(t, d, data, "allowlist", "import", id, bad)
	require.Error(t, err, out)
	assert.Contains(t, out, "line 4")
	assert.Contains(t, out, "host_bits_set")
	assert.Equal(t, 403, checkIP(t, d, secret, "198.51.100.20"), "nothing imported from a file with a refused line")

	good := filepath.Join(t.TempDir(), "good.txt")
	require.NoError(t, os.WriteFile(good, []byte("198.51.100.20,Office\n2001:db8::/48 VPN\n"), 0o600))
	out, err = cli(t, d, data, "allowlist", "import", id, good)
	require.NoError(t, err, out)
	assert.Equal(t, 200, checkIP(t, d, secret, "198.51.100.20"), "imported")
	assert.Equal(t, 200, checkIP(t, d, secret, "198.51.100.9"), "existing entries kept")

	_, err = cli(t, d, data, "keys", "rotate", id)
	assert.Error(t, err, "--overlap is required")
	out, err = cli(t, d, data, "keys", "rotate", id, "--overlap", "1h")
	require.NoError(t, err, out)
	r := jsonOut(t, out)
	assert.Equal(t, id, r["id"])
	fresh := r["secret"].(string)
	assert.Equal(t, 200, checkIP(t, d, secret, "203.0.113.1"), "old secret in the overlap")
	assert.Equal(t, 200, checkIP(t, d, fresh, "203.0.113.1"), "new secret")
	out, err = cli(t, d, data, "keys", "rotate", id, "--overlap", "0s")
	require.NoError(t, err, out)
	assert.Equal(t, 401, checkIP(t, d, fresh, "203.0.113.1"), "no overlap: the previous secret stops at once")
	assert.Equal(t, 401, checkIP(t, d, secret, "203.0.113.1"), "the first secret is long gone")
}
