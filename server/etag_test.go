package server

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIfMatch: GET of a key and of its allowlist send the key's ETag;
// every write answers with the new one; a write with a stale If-Match is
// 412 PRECONDITION_FAILED with nothing changed; without If-Match the last
// write wins; malformed tags are 400.
func TestIfMatch(t *testing.T) {
	ts := startServer(t, nil)
	id, _ := ts.createKey(t, map[string]any{"name": "etag"})
	auth := []string{"Authorization", "Bearer " + testToken}
	with := func(method, path string, body any, tag string) response {
		t.Helper()
		h := auth
		if tag != "" {
			h = append(h[:2:2], "If-Match", tag)
		}
		return do(t, method, ts.adminURL+path, body, h...)
	}

	g := ts.admin(t, "GET", "/v1/keys/"+id, nil)
	wantStatus(t, g, http.StatusOK, "GET")
	tag := g.header.Get("ETag")
	require.Regexp(t, `^"v[0-9]+"$`, tag)
	al := ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil)
	assert.Equal(t, tag, al.header.Get("ETag"), "the allowlist's ETag is the key's")

	// Alice (fresh tag) wins, Bob (the same, now stale tag) gets 412.
	r := with("PUT", "/v1/keys/"+id+"/allowlist", map[string]any{"entries": []map[string]string{{"cidr": "203.0.113.7"}}}, tag)
	wantStatus(t, r, http.StatusOK, "PUT with a fresh If-Match")
	newTag := r.header.Get("ETag")
	require.NotEqual(t, tag, newTag)
	r = with("PUT", "/v1/keys/"+id+"/allowlist", map[string]any{"entries": []map[string]string{{"cidr": "198.51.100.9"}}}, tag)
	wantStatus(t, r, http.StatusPreconditionFailed, "PUT with a stale If-Match")
	assert.Equal(t, "PRECONDITION_FAILED", r.errCode(t))
	r = with("PATCH", "/v1/keys/"+id, map[string]any{"name": "bob"}, tag)
	wantStatus(t, r, http.StatusPreconditionFailed, "PATCH with a stale If-Match")
	r = with("POST", "/v1/keys/"+id+"/allowlist", map[string]any{"cidr": "198.51.100.10"}, tag)
	wantStatus(t, r, http.StatusPreconditionFailed, "POST entry with a stale If-Match")
	g = ts.admin(t, "GET", "/v1/keys/"+id, nil)
	assert.Equal(t, newTag, g.header.Get("ETag"), "the stale writes changed nothing")
	m := g.json(t)
	assert.Equal(t, "etag", m["name"])
	assert.Len(t, m["allowlist"], 1)

	r = with("PATCH", "/v1/keys/"+id, map[string]any{"name": "alice"}, newTag)
	wantStatus(t, r, http.StatusOK, "PATCH with a fresh If-Match")
	r = with("PATCH", "/v1/keys/"+id, map[string]any{"name": "carol"}, "*")
	wantStatus(t, r, http.StatusOK, "PATCH with If-Match: *")
	r = with("PATCH", "/v1/keys/"+id, map[string]any{"name": "dave"}, "")
	wantStatus(t, r, http.StatusOK, "PATCH without If-Match: the last write wins")
	assert.Equal(t, "dave", r.json(t)["name"])

	for _, bad := range []string{`v1`, `"x1"`, `"v"`, `"v0"`, `"v1", "v2"`} {
		r = with("PATCH", "/v1/keys/"+id, map[string]any{"name": "x"}, bad)
		wantStatus(t, r, http.StatusBadRequest, "If-Match "+bad)
	}
	r = with("PATCH", "/v1/keys/"+id, map[string]any{"name": "x"}, `W/`+r.header.Get("ETag"))
	wantStatus(t, r, http.StatusPreconditionFailed, "a weak tag never matches")

	// If-Match on two lines: the same tag is that tag; two tags (a fresh
	// and a stale one, either first) are refused, and nothing changes.
	fresh := ts.admin(t, "GET", "/v1/keys/"+id, nil).header.Get("ETag")
	for _, tags := range [][2]string{{fresh, tag}, {tag, fresh}, {fresh, "*"}, {"", fresh}} {
		r = do(t, "PATCH", ts.adminURL+"/v1/keys/"+id, map[string]any{"name": "two tags"}, append(auth[:2:2], "If-Match", tags[0], "If-Match", tags[1])...)
		wantStatus(t, r, http.StatusBadRequest, "If-Match "+tags[0]+" and "+tags[1])
		assert.Contains(t, r.json(t)["error"].(map[string]any)["message"], "several lines")
	}
	assert.Equal(t, "dave", ts.admin(t, "GET", "/v1/keys/"+id, nil).json(t)["name"], "two If-Match lines changed nothing")
	r = do(t, "PATCH", ts.adminURL+"/v1/keys/"+id, map[string]any{"name": "erin"}, append(auth[:2:2], "If-Match", fresh, "If-Match", fresh)...)
	wantStatus(t, r, http.StatusOK, "the same If-Match on two lines")
}

// TestStoreDownWrites: with the store unreachable, a management write is
// 503 UNAVAILABLE and the key set is unchanged; checks answer from the
// snapshot; /readyz stays 200 and keygate_store_up says 1 (this store
// has no Health of its own).
func TestStoreDownWrites(t *testing.T) {
	ts := startServer(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "down", "allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	ts.st.mu.Lock()
	ts.st.down = true
	ts.st.mu.Unlock()
	r := ts.admin(t, "PATCH", "/v1/keys/"+id, map[string]any{"name": "x"})
	wantStatus(t, r, http.StatusServiceUnavailable, "PATCH while the store is down")
	assert.Equal(t, "UNAVAILABLE", r.errCode(t))
	r = ts.admin(t, "DELETE", "/v1/keys/"+id, nil)
	wantStatus(t, r, http.StatusServiceUnavailable, "DELETE while the store is down")
	wantStatus(t, ts.check(t, secret, "203.0.113.5", ""), http.StatusOK, "check from the snapshot")
	wantStatus(t, ts.check(t, secret, "198.51.100.5", ""), http.StatusForbidden, "the allowlist still holds")
	wantStatus(t, do(t, "GET", ts.checkURL+"/readyz", nil), http.StatusOK, "/readyz")
}
