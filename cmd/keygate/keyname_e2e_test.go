package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/store/storetest"
)

// TestCSVExportKeyNames goes through the product: two keys with names a
// spreadsheet could misread (a DDE formula, a ';'), checks with each and
// with an invalid key; the export's last column, key_name, names each
// row's key as it is named when the export starts (a rename shows in the
// next export), and is empty for a check of no key.
func TestCSVExportKeyNames(t *testing.T) {
	data := t.TempDir()
	d := startKeygate(t, data, nil)
	names := map[string]string{}
	var ids, secrets []string
	for _, name := range []string{"=cmd|' /C calc'!A0", "billing;prod,eu"} {
		m := call(t, "POST", d.admin+"/v1/keys", d.token, map[string]any{"name": name}).obj(t)
		id, _ := m["id"].(string)
		require.NotEmpty(t, id, "create %q: %v", name, m)
		names[id] = name
		ids, secrets = append(ids, id), append(secrets, m["secret"].(string))
	}
	names[""] = ""
	for _, secret := range []string{secrets[0], secrets[1], "kg_invalid", secrets[0]} {
		checkIP(t, d, secret, "203.0.113.5")
	}
	n := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && n < 4; time.Sleep(100 * time.Millisecond) {
		n = len(call(t, "GET", d.admin+"/v1/logs", d.token, nil).obj(t)["items"].([]any))
	}
	require.Equal(t, 4, n, "logged checks")

	// export reads the CLI's export and checks each row's key_name.
	export := func(want map[string]string, args ...string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "logs.csv")
		out, err := cli(t, d, data, append([]string{"logs", "export", "-o", p}, args...)...)
		require.NoError(t, err, out)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		require.NoError(t, err)
		require.Equal(t, []string{"time", "key_id", "ip", "method", "path", "status", "code", "entry_id", "latency_us", "secret_hint", "node", "key_name"}, rows[0])
		seen := map[string]int{}
		for _, row := range rows[1:] {
			id := row[1]
			name, ok := want[id]
			require.True(t, ok, "row of key %q: %v", id, row)
			assert.Equal(t, storetest.CSVCell(name), row[11], "key_name of a row of key %q", id)
			seen[id]++
		}
		for id := range want {
			assert.NotZero(t, seen[id], "no row of key %q", id)
		}
		// Split as a spreadsheet in a ';' locale does, no cell is a formula.
		for _, line := range strings.Split(string(b), "\r\n") {
			for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ';' }) {
				g := strings.TrimLeft(f, `"`)
				assert.False(t, g != "" && strings.IndexByte("=+-@\t\r", g[0]) >= 0, "cell %q of %q", f, line)
			}
		}
	}
	export(names)
	export(map[string]string{ids[1]: names[ids[1]]}, "--key-id", ids[1])

	// A rename is in the next export, for the rows logged before it.
	r := call(t, "PATCH", d.admin+"/v1/keys/"+ids[1], d.token, map[string]any{"name": "+renamed;@x"})
	require.Equal(t, 200, r.status, "%s", r.body)
	names[ids[1]] = "+renamed;@x"
	export(names)

	// Over HTTP, the same column.
	r = call(t, "GET", d.admin+"/v1/logs/export.csv?key_id="+ids[0], d.token, nil)
	require.Equal(t, 200, r.status, "%s", r.body)
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	for _, row := range rows[1:] {
		assert.Equal(t, []string{ids[0], "'=cmd|' /C calc'!A0"}, []string{row[1], row[11]})
	}
}
