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

// The admin commands for scripts: --server without a scheme, --json with
// nothing but JSON on standard output, an empty allowlist only with
// --allow-all, no overwritten export without --force, exit 2 for usage.
func TestCLIForScripts(t *testing.T) {
	d := startKeygate(t, t.TempDir(), []string{"KEYGATE_ADMIN_TOKEN=" + sigToken})
	bare := strings.TrimPrefix(d.admin, "http://")
	kg := func(args ...string) (int, string, string) {
		t.Helper()
		return runKeygate(t, nil, append(args, "--server", bare, "--admin-token", sigToken)...)
	}
	pureJSON := func(out string) map[string]any {
		t.Helper()
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &v), "not pure JSON: %q", out)
		return v
	}
	code, out, errOut := kg("keys", "create", "--name", "k", "--allow", "203.0.113.5", "--json")
	require.Equal(t, 0, code, errOut)
	id := pureJSON(out)["id"].(string)

	code, out, errOut = kg("keys", "list", "--json")
	require.Equal(t, 0, code, errOut)
	assert.Len(t, pureJSON(out)["items"], 1)
	for _, args := range [][]string{{"keys", "show", id}, {"allowlist", "list", id}, {"logs", "query"}, {"audit"}} {
		code, out, errOut = kg(append(args, "--json")...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		pureJSON(out)
	}

	code, out, errOut = kg("logs", "query", "--ip", "::ffff:203.0.113.5", "--path-prefix", "/orders", "--json")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, pureJSON(out)["items"])
	code, _, errOut = kg("logs", "export", "--ip", "203.0.113.0/24")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "ip: ")

	// An export has every matching record: a page's flags are refused
	// (exit 2) rather than ignored.
	code, out, errOut = kg("logs", "export", "--limit", "5")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "logs query")
	assert.Empty(t, out, "no export started")

	code, _, errOut = kg("allowlist", "replace", id)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--allow-all")
	code, out, errOut = kg("allowlist", "replace", id, "--allow-all", "--json")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, pureJSON(out)["entries"])

	path := filepath.Join(t.TempDir(), "x.csv")
	require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o600))
	code, _, errOut = kg("logs", "export", "-o", path)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--force")
	b, _ := os.ReadFile(path)
	assert.Equal(t, "keep me", string(b))
	code, out, errOut = kg("logs", "export", "-o", path, "--force", "--json")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, path, pureJSON(out)["file"])

	code, _, _ = kg("keys", "frobnicate")
	assert.Equal(t, 2, code)
	code, _, errOut = runKeygate(t, nil, "keys", "list", "--server", "ftp://x", "--admin-token", sigToken)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "want the daemon's address")
	code, _, _ = runKeygate(t, nil, "keys", "show", "key_nope", "--server", bare, "--admin-token", sigToken)
	assert.Equal(t, 1, code)
}

// GET /v1/audit and keygate audit read the trail, newest first, filtered
// by key and paged; each management write is logged with actor, action
// and key id, never the secret.
func TestAuditTrail(t *testing.T) {
	d := startKeygate(t, t.TempDir(), []string{"KEYGATE_ADMIN_TOKEN=" + sigToken})
	var ids, secrets []string
	for _, name := range []string{"a", "b"} {
		r := call(t, "POST", d.admin+"/v1/keys", sigToken, map[string]any{"name": name})
		require.Equal(t, 201, r.status)
		ids, secrets = append(ids, r.obj(t)["id"].(string)), append(secrets, r.obj(t)["secret"].(string))
	}
	require.Equal(t, 200, call(t, "DELETE", d.admin+"/v1/keys/"+ids[0], sigToken, nil).status)

	r := call(t, "GET", d.admin+"/v1/audit", sigToken, nil)
	require.Equal(t, 200, r.status, string(r.body))
	var page struct {
		Items []struct {
			Seq           uint64
			Actor, Action string
			KeyID         string `json:"key_id"`
		}
		NextCursor string `json:"next_cursor"`
	}
	require.NoError(t, json.Unmarshal(r.body, &page))
	require.Len(t, page.Items, 3)
	assert.Equal(t, "key.revoke", page.Items[0].Action)
	assert.Equal(t, uint64(3), page.Items[0].Seq)
	assert.NotContains(t, string(r.body), secrets[0])
	assert.NotContains(t, string(r.body), "hash")

	code, out, errOut := runKeygate(t, nil, "audit", "--key-id", ids[0], "--limit", "1", "--server", d.admin, "--admin-token", sigToken)
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &page))
	require.Len(t, page.Items, 1)
	assert.Equal(t, "key.revoke", page.Items[0].Action)
	assert.Equal(t, "3", page.NextCursor)
	code, out, _ = runKeygate(t, nil, "audit", "--key-id", ids[0], "--cursor", "3", "--server", d.admin, "--admin-token", sigToken)
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &page))
	require.Len(t, page.Items, 1)
	assert.Equal(t, "key.create", page.Items[0].Action)

	assert.Equal(t, 401, call(t, "GET", d.admin+"/v1/audit", "", nil).status)
	assert.Equal(t, 400, call(t, "GET", d.admin+"/v1/audit?limit=0", sigToken, nil).status)

	logs := waitOutput(t, d, "action=key.revoke")
	assert.Contains(t, logs, "actor=admin-api action=key.create key_id="+ids[1])
	for _, s := range secrets {
		assert.NotContains(t, logs, s)
	}
}
