package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// TestPatchExpiry: PATCH applies create's rule to expires_at (a past time
// is refused, nothing changed), null clears an expiry, and a future time
// renews an expired key. Before, PATCH stored a past expiry, and null was
// read as "not given".
func TestPatchExpiry(t *testing.T) {
	ts := startServer(t, nil)
	future := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	id, secret := ts.createKey(t, map[string]any{"name": "k", "expires_at": future})
	path := "/v1/keys/" + id

	for _, past := range []string{"2001-01-01T00:00:00Z", time.Now().Add(-time.Second).UTC().Format(time.RFC3339)} {
		r := ts.admin(t, "PATCH", path, `{"name":"renamed","expires_at":"`+past+`"}`)
		if r.status != 422 || !strings.Contains(string(r.body), "expires_at must be in the future") {
			t.Errorf("PATCH a past expiry %s: status %d %s, want 422 saying it must be in the future", past, r.status, r.body)
		}
	}
	k := ts.admin(t, "GET", path, nil).json(t)
	if k["name"] != "k" || k["expires_at"] != future.Format(time.RFC3339) {
		t.Errorf("after refused PATCHes: name %v expires_at %v, want k and %s", k["name"], k["expires_at"], future.Format(time.RFC3339))
	}

	// Absent leaves the expiry alone; null clears it.
	r := ts.admin(t, "PATCH", path, `{"name":"k2"}`)
	wantStatus(t, r, 200, "PATCH without expires_at")
	if got := r.json(t)["expires_at"]; got != future.Format(time.RFC3339) {
		t.Errorf("PATCH without expires_at: expires_at %v, want %s", got, future.Format(time.RFC3339))
	}
	r = ts.admin(t, "PATCH", path, `{"expires_at":null}`)
	wantStatus(t, r, 200, "PATCH expires_at null")
	if got := r.json(t)["expires_at"]; got != nil {
		t.Errorf("PATCH expires_at null: expires_at %v, want null", got)
	}

	// An expired key is renewed by setting a future expiry.
	_, err := ts.keys.Commit(context.Background(), func() (store.Change, error) {
		return ts.st.UpdateKey(context.Background(), id, "test", "key.update", func(k *engine.Key) error {
			k.ExpiresAt = time.Now().Add(-time.Minute)
			return nil
		})
	})
	must(t, err)
	wantStatus(t, ts.check(t, secret, "203.0.113.5", ""), 401, "expired key")
	if st := ts.admin(t, "GET", path, nil).json(t)["status"]; st != "expired" {
		t.Errorf("status %v, want expired", st)
	}
	r = ts.admin(t, "PATCH", path, map[string]any{"expires_at": future})
	wantStatus(t, r, 200, "renew")
	if st := r.json(t)["status"]; st != "active" {
		t.Errorf("renewed key status %v, want active", st)
	}
	wantStatus(t, ts.check(t, secret, "203.0.113.5", ""), 200, "renewed key")
}
