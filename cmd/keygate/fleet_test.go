package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFleetConfig: the fleet settings come from flags, KEYGATE_* and the
// config file (database_url, node_name, spool_max_bytes), flags first;
// fleet mode needs a configured admin token; the default node name is the
// host name and the check port.
func TestFleetConfig(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "keygate.json")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`{"database_url": "postgres://file@db/k", "node_name": "from-file", "spool_max_bytes": "1000", "admin_token": "file-token-0123456789"}`), 0o600))
	noEnv := func(string) (string, bool) { return "", false }
	cfg, _, err := loadServeConfig([]string{"--config", cfgFile}, noEnv)
	require.NoError(t, err)
	assert.Equal(t, Fleet{DatabaseURL: "postgres://file@db/k", NodeName: "from-file", SpoolMaxBytes: 1000}, cfg.Fleet)

	env := func(k string) (string, bool) {
		if k == "KEYGATE_DATABASE_URL" {
			return "postgres://env@db/k", true
		}
		return "", false
	}
	cfg, _, err = loadServeConfig([]string{"--config", cfgFile, "--node-name", "from-flag", "--database-wait", "5s"}, env)
	require.NoError(t, err)
	assert.Equal(t, Fleet{DatabaseURL: "postgres://env@db/k", NodeName: "from-flag", SpoolMaxBytes: 1000, DatabaseWait: 5 * time.Second}, cfg.Fleet)

	_, _, err = loadServeConfig([]string{"--data", dir, "--database-url", "postgres://x@db/k"}, noEnv)
	require.Error(t, err, "fleet mode without an admin token")
	assert.Contains(t, err.Error(), "fleet mode (--database-url) needs --admin-token or KEYGATE_ADMIN_TOKEN")
	_, _, err = loadServeConfig([]string{"--admin-token", "flag-token-0123456789", "--spool-max-bytes", "-1"}, noEnv)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "spool-max-bytes must not be negative")

	host, _ := os.Hostname()
	assert.Equal(t, host+":9090", defaultNode("0.0.0.0:9090"))
	assert.Equal(t, "postgres://bob:xxxxx@db:5432/k", redactURL("postgres://bob:secret@db:5432/k"))
	assert.False(t, strings.Contains(redactURL("postgres://bob:secret@db:%zz/k"), "secret"))
}
