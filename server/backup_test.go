package server

import (
	"strings"
	"testing"
)

// TestBackupNotImplemented: a store without store.Backuper (a database
// server's) answers /v1/backup with 501 pointing at the database's own
// backups; the token is checked first. The Badger store's backups are
// tested end to end in cmd/keygate (TestBackupRestore).
func TestBackupNotImplemented(t *testing.T) {
	ts := startServer(t, nil)
	r := do(t, "GET", ts.adminURL+"/v1/backup", nil)
	wantStatus(t, r, 401, "backup without the admin token")
	r = ts.admin(t, "POST", "/v1/backup", nil)
	wantStatus(t, r, 405, "POST /v1/backup")
	r = ts.admin(t, "GET", "/v1/backup", nil)
	wantStatus(t, r, 501, "backup of a store without Backuper")
	if code := r.errCode(t); code != "NOT_IMPLEMENTED" {
		t.Errorf("code %q, want NOT_IMPLEMENTED", code)
	}
	if !strings.Contains(string(r.body), "pg_dump") {
		t.Errorf("the message should point at the database's backups: %s", r.body)
	}
	r = do(t, "GET", ts.checkURL+"/v1/backup", nil, "Authorization", "Bearer "+testToken)
	if ts.checkURL != ts.adminURL {
		wantStatus(t, r, 404, "backup on the check listener")
	}
}
