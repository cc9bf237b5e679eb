package server

import (
	"net/http"
	"strings"
	"testing"
)

// A management request's path is served only as it is written: one that
// means a management path only once decoded or resolved (an encoded
// slash or letter, a dot segment, a repeated or trailing slash), one
// that holds a backslash and a target with a #fragment are 400s naming
// it, before anything is done. A proxy in front
// that allows or logs by path may read any of them differently. A plain
// path, in origin or absolute form, is served.
func TestManagementPathsPlain(t *testing.T) {
	ts := startServer(t, nil)
	id, _ := ts.createKey(t, map[string]any{"name": "paths", "allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	addr := strings.TrimPrefix(ts.adminURL, "http://")
	send := func(method, target string) response {
		t.Helper()
		return rawRequest(t, addr, method+" "+target+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\nConnection: close\r\n\r\n")
	}
	for _, target := range []string{
		"/v1/keys/" + id + "%2Fallowlist", "/v1/keys%2F" + id, "/v1/keys/" + id + "/allowlist%2F",
		"/v1/keys/" + id + "%252Fallowlist", "/v1/keys/" + id + "%2fallowlist", "/v1/keys/%6B" + id[1:],
		"/v1/keys/" + id + "/./allowlist", "/v1/keys/x/../" + id, "/v1/keys/" + id + "/allowlist/..",
		"/v1/x/../keys/" + id, "/v1/keys/" + id + "\\allowlist", "//v1/keys/" + id, "/v1//keys/" + id,
		"/v1/keys/" + id + "%00", "/v1/logs%2Fexport.csv", "/v1/audit/.", "/debug/pprof/%68eap",
		"http://x/v1/keys/x/../" + id,
		// A fragment, dropped before the path and the query are read; a
		// trailing slash, a second spelling of the same path.
		"/v1/keys/" + id + "#/../../x", "/v1/keys/" + id + "#frag", "/v1/logs?limit=1#&limit=2",
		"/v1/keys/" + id + "/", "/v1/keys/", "/v1/keys/" + id + "/allowlist/", "/v1/audit/",
	} {
		for _, m := range []string{"GET", "DELETE"} {
			r := send(m, target)
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "not plain") {
				t.Errorf("%s %s: %d %s; want 400, not plain", m, target, r.status, r.body)
			}
		}
	}
	// Without the token, 401 comes first.
	r := rawRequest(t, addr, "DELETE /v1/keys/x/../"+id+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	wantStatus(t, r, http.StatusUnauthorized, "a path that is not plain, without the token")
	k := ts.admin(t, "GET", "/v1/keys/"+id, nil)
	if st := k.json(t)["status"]; st != "active" {
		t.Fatalf("key %v after the refused DELETEs", st)
	}
	for _, target := range []string{"/v1/keys/" + id, "/v1/keys/" + id + "/allowlist", "http://x/v1/keys/" + id, "/v1/keys/" + id + "?"} {
		wantStatus(t, send("GET", target), http.StatusOK, target)
	}
	// The UI and the check path are not management: decoded as before.
	wantStatus(t, send("GET", "/%69ndex.html"), http.StatusOK, "the UI, with an encoded letter")
}
