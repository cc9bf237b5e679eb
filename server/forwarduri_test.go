package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest writes req (a whole HTTP/1.1 request, "\r\n" line ends) to
// addr as it is, with no client-side cleaning of the target, and reads
// the answer.
func rawRequest(t *testing.T, addr, req string) response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// everyEndpoint lists a path of each handler keygate has.
func everyEndpoint(keyID string) []string {
	return []string{
		"/healthz", "/readyz", "/metrics", "/v1/check",
		"/v1/keys", "/v1/keys/" + keyID, "/v1/keys/" + keyID + "/allowlist",
		"/v1/logs", "/v1/logs/export.csv", "/", "/index.html", "/v1/nope",
	}
}

// escapes turns an endpoint path into raw request targets that start with
// /v1/authz and normalise to the endpoint.
func escapes(ep string) []string {
	ep = strings.TrimPrefix(ep, "/")
	return []string{
		"/v1/authz/../../" + ep,
		"/v1/authz/../../../../" + ep,
		"/v1/authz/..%2F..%2F" + ep,
		"/v1/authz/..%2f..%2f" + ep,
		"/v1/authz/%2e%2e/%2e%2e/" + ep,
		"/v1/authz/%2E%2E%2F%2E%2E%2F" + ep,
		"/v1/authz/./../../" + ep,
		"/v1/authz%2F..%2F..%2F" + ep,
		"/v1/authzx/../../" + ep,
		"/v1/authz/..\\..\\" + ep,
	}
}

// TestAuthzNeverReachesAnotherEndpoint: a raw path that starts with
// /v1/authz is decided as forward-auth whatever follows, with the admin
// token as the bearer too, on a listener that also serves management.
// Before the fix /v1/authz/../../healthz answered 200 with no key and
// /v1/authz/../../v1/keys listed the keys.
func TestAuthzNeverReachesAnotherEndpoint(t *testing.T) {
	for _, routes := range []bool{false, true} {
		ts := startServer(t, func(c *Config) {
			if routes {
				c.Routes = []Route{{Prefix: "/", Scope: "base"}}
			}
		})
		id, secret := ts.createKey(t, map[string]any{"name": "k", "scopes": []string{"base"}})
		addr := strings.TrimPrefix(ts.checkURL, "http://")
		for _, ep := range everyEndpoint(id) {
			for _, target := range escapes(ep) {
				for _, method := range []string{"GET", "POST", "DELETE"} {
					for _, c := range []struct {
						auth   string
						status int
						code   string
					}{
						{"", 401, "INVALID_KEY"},
						{"Authorization: Bearer " + testToken + "\r\n", 401, "INVALID_KEY"},
						{"X-API-Key: " + secret + "\r\n", 403, "INSUFFICIENT_SCOPE"},
					} {
						for _, form := range []string{target, "http://" + addr + target} {
							req := method + " " + form + " HTTP/1.1\r\nHost: " + addr + "\r\n" + c.auth + "Content-Length: 0\r\nConnection: close\r\n\r\n"
							r := rawRequest(t, addr, req)
							if strings.Contains(form, "\\") && !routes && c.status == 403 {
								// fasthttp keeps a backslash as a byte, so
								// the path stays below /v1/authz and no
								// rule asks for a scope.
								c.status, c.code = 200, ""
							}
							if r.status != c.status || r.header.Get(HeaderErrorCode) != c.code {
								t.Errorf("routes=%v %s %s (%q): %d %s %s, want %d %s", routes, method, form, c.auth, r.status, r.header.Get(HeaderErrorCode), r.body, c.status, c.code)
							}
							if _, ok := r.header[http.CanonicalHeaderKey(HeaderKeyID)]; !ok {
								t.Errorf("%s %s: no %s header: not a forward-auth answer", method, form, HeaderKeyID)
							}
						}
					}
				}
			}
		}
		// The logs were not read, and no key was created or revoked.
		if n := len(ts.admin(t, "GET", "/v1/keys", nil).json(t)["items"].([]any)); n != 1 {
			t.Errorf("%d keys, want 1", n)
		}
	}
}

// TestAuthzPathFromNormalised: without a forwarded URI, the route path is
// the normalised path below /v1/authz, whatever raw path reached it.
// Before the fix it was sliced from the raw path: /v1/x/../authz/admin
// was matched as /authz/admin, and /v1/%61uthz/admin as /hz/admin.
func TestAuthzPathFromNormalised(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Routes = []Route{{Prefix: "/", Scope: "base"}, {Prefix: "/admin", Scope: "admin"}}
	})
	_, base := ts.createKey(t, map[string]any{"name": "base", "scopes": []string{"base"}})
	_, admin := ts.createKey(t, map[string]any{"name": "admin", "scopes": []string{"base", "admin"}})
	addr := strings.TrimPrefix(ts.checkURL, "http://")
	for _, c := range []struct {
		target, key string
		want        int
	}{
		{"/v1/x/../authz/admin", base, 403},
		{"/v1/%61uthz/admin", base, 403},
		{"/v1/%61uthz/admin", admin, 200},
		{"/v1/%61uthz/x", base, 200},
		{"/v1/authz/admin", base, 403},
		{"/v1/authz/admin", admin, 200},
		{"/v1/authz/x/../admin", base, 403},
		{"/v1/authz/x/../admin", admin, 403}, // ambiguous: see TestAmbiguousPaths
		{"/v1/authz", base, 200},
	} {
		r := rawRequest(t, addr, "GET "+c.target+" HTTP/1.1\r\nHost: x\r\nX-API-Key: "+c.key+"\r\nConnection: close\r\n\r\n")
		if r.status != c.want {
			t.Errorf("%s: %d %s, want %d", c.target, r.status, r.body, c.want)
		}
	}
}

// TestForwardedURIForms: an absolute-form forwarded URI (what HAProxy's
// url fetch gives for HTTP/2) is matched by its path; anything neither
// absolute-form nor a path needs a scope no key holds. 401 stays first.
// Before the fix "http://host/admin" was read as the path
// "/http:/host/admin" and matched only the "/" rule.
func TestForwardedURIForms(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Routes = []Route{{Prefix: "/", Scope: "base"}, {Prefix: "/admin", Scope: "admin"}, {Prefix: "/admin/public", Scope: ""}}
	})
	_, base := ts.createKey(t, map[string]any{"name": "base", "scopes": []string{"base"}})
	_, none := ts.createKey(t, map[string]any{"name": "none"})
	for _, c := range []struct {
		uri  string
		key  string
		want int
	}{
		{"http://api.example.com/admin", base, 403},
		{"https://api.example.com:8443/admin/users?x=1", base, 403},
		{"HTTP://api.example.com/admin", base, 403},
		{"http://api.example.com/orders", base, 200},
		{"http://api.example.com/admin/public/x", none, 200},
		{"http://api.example.com", base, 200},
		{"http://api.example.com?/admin", base, 200},
		{"http://user@api.example.com/admin", base, 403},
		{"http://api.example.com\\@evil/orders", base, 403},
		{"http://api%2eexample.com/orders", base, 403},
		{"admin", base, 403},
		{"admin/public/x", none, 403},
		{"*", base, 403},
		{"http:/admin/public", none, 403},
		{"http:admin/public", none, 403},
		{"//admin/public", none, 403}, // an empty segment: ambiguous
		{"1http://x/admin/public", none, 403},
		{"admin", "kg_" + strings.Repeat("A", 38), 401},
		{"http://x/admin", "", 401},
	} {
		for _, h := range []string{"X-Forwarded-Uri", "X-Original-Uri"} {
			r := do(t, "GET", ts.checkURL+"/v1/authz", nil, "X-API-Key", c.key, h, c.uri)
			if r.status != c.want {
				t.Errorf("%s: %s: %d %s, want %d", h, c.uri, r.status, r.body, c.want)
			}
			if c.want == 403 && r.header.Get(HeaderErrorCode) != "INSUFFICIENT_SCOPE" {
				t.Errorf("%s: %s: code %s", h, c.uri, r.header.Get(HeaderErrorCode))
			}
		}
	}
	// Without route rules nothing is required, so no form is refused.
	ts = startServer(t, nil)
	_, k := ts.createKey(t, map[string]any{"name": "k"})
	r := do(t, "GET", ts.checkURL+"/v1/authz", nil, "X-API-Key", k, "X-Forwarded-Uri", "/public/..;/admin")
	wantStatus(t, r, 200, "no rules, ambiguous path")
}

// TestAmbiguousPaths: with route rules, a path the upstream may read
// differently from keygate is never matched to a rule: it needs a scope
// no key holds. Before the fix /public/%5c../admin, /public/..;/admin and
// /public/%252e%252e/admin were classed as exempt.
func TestAmbiguousPaths(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Routes = []Route{{Prefix: "/", Scope: "base"}, {Prefix: "/admin", Scope: "admin"}, {Prefix: "/public", Scope: ""}}
	})
	_, all := ts.createKey(t, map[string]any{"name": "all", "scopes": []string{"base", "admin"}})
	addr := strings.TrimPrefix(ts.checkURL, "http://")
	ambiguous := []string{
		`/public\..\admin`, `/public/%5c../admin`, `/public/%5C..%5Cadmin`,
		`/public/..;/admin`, `/public;x/../admin`, `/public/%3b/admin`,
		`/public/%252e%252e/admin`, `/public/%2fadmin`, `/public%2F..%2Fadmin`,
		`/public/../admin`, `/public/./x`, `/public/%2e%2e/admin`, `/public/.%2e/admin`, `/public/..`,
		`/public//x`, `/public/%00`, `/public/%0a`, `/public/%7f`, "/public/\x01", "/public/\x7f",
		`/public/%`, `/public/%2`, `/public/%zz`,
	}
	for _, p := range ambiguous {
		for _, h := range []string{"X-Forwarded-Uri", "X-Original-Uri"} {
			req := "GET /v1/authz HTTP/1.1\r\nHost: x\r\nX-API-Key: " + all + "\r\n" + h + ": " + p + "\r\nConnection: close\r\n\r\n"
			r := rawRequest(t, addr, req)
			if strings.ContainsAny(p, "\x01\x7f") && r.status == 400 {
				continue // fasthttp refuses the header line itself
			}
			if r.status != 403 || r.header.Get(HeaderErrorCode) != "INSUFFICIENT_SCOPE" {
				t.Errorf("%s %q: %d %s, want 403 INSUFFICIENT_SCOPE", h, p, r.status, r.body)
			}
		}
		if strings.ContainsAny(p, "\x01\x7f") {
			continue // not a valid request target
		}
		r := rawRequest(t, addr, "GET /v1/authz"+p+" HTTP/1.1\r\nHost: x\r\nX-API-Key: "+all+"\r\nConnection: close\r\n\r\n")
		if r.status != 403 {
			t.Errorf("path /v1/authz%s: %d %s, want 403", p, r.status, r.body)
		}
	}
	for _, p := range ambiguous {
		if !ambiguousPath([]byte(p)) {
			t.Errorf("ambiguousPath(%q) = false", p)
		}
	}
	for _, p := range []string{"/public/\t", "/a\x00b", "/\x1f", "/%1F", "/%5c", "/a/.", "/a/..", "/.", "//"} {
		if !ambiguousPath([]byte(p)) {
			t.Errorf("ambiguousPath(%q) = false", p)
		}
	}
	// Plain paths, and encodings that mean one thing to everyone, still
	// match.
	for _, p := range []string{"/public/x", "/public/%61dmin", "/publicx/a.b/..c/.d", "/admin/x?y=/../;", "/public/x%20y", "/public/caf%C3%A9"} {
		r := do(t, "GET", ts.checkURL+"/v1/authz", nil, "X-API-Key", all, "X-Forwarded-Uri", p)
		wantStatus(t, r, 200, p)
	}
}

// TestRouteCaseInsensitive: matching is byte for byte unless a rule says
// case_insensitive.
func TestRouteCaseInsensitive(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Routes = []Route{{Prefix: "/admin", Scope: "admin"}, {Prefix: "/Orders", Scope: "orders", CaseInsensitive: true}}
	})
	_, k := ts.createKey(t, map[string]any{"name": "k"})
	for _, c := range []struct {
		path string
		want int
	}{
		{"/admin", 403}, {"/ADMIN", 200}, {"/Admin/x", 200},
		{"/orders", 403}, {"/ORDERS/1", 403}, {"/Orders", 403}, {"/oRdErS", 403}, {"/order", 200},
	} {
		r := do(t, "GET", ts.checkURL+"/v1/authz", nil, "X-API-Key", k, "X-Forwarded-Uri", c.path)
		if r.status != c.want {
			t.Errorf("%s: %d, want %d", c.path, r.status, c.want)
		}
	}
}

// TestRepeatedHeaders: two lines of a header keygate reads once, with
// different values, fail closed: no address for X-Real-IP, a scope no key
// holds for the forwarded method and URI, 401 for the key. Before the fix
// the first line won.
func TestRepeatedHeaders(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Routes = []Route{{Prefix: "/admin", Scope: "admin"}, {Method: "DELETE", Prefix: "/", Scope: "delete"}}
	})
	_, k := ts.createKey(t, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	_, other := ts.createKey(t, map[string]any{"name": "other"})
	tests := []struct {
		name string
		hdr  []string
		want int
	}{
		{"baseline", []string{"X-API-Key", k, "X-Real-IP", "203.0.113.5", "X-Forwarded-Uri", "/x"}, 200},
		{"X-Real-IP twice, same", []string{"X-API-Key", k, "X-Real-IP", "203.0.113.5", "X-Real-IP", "203.0.113.5"}, 200},
		{"X-Real-IP twice, allowed first", []string{"X-API-Key", k, "X-Real-IP", "203.0.113.5", "X-Real-IP", "198.51.100.1"}, 403},
		{"X-Real-IP twice, allowed last", []string{"X-API-Key", k, "X-Real-IP", "198.51.100.1", "X-Real-IP", "203.0.113.5"}, 403},
		{"X-Forwarded-Uri twice", []string{"X-API-Key", other, "X-Forwarded-Uri", "/x", "X-Forwarded-Uri", "/admin"}, 403},
		{"X-Forwarded-Uri twice, exempt first", []string{"X-API-Key", other, "X-Forwarded-Uri", "/admin", "X-Forwarded-Uri", "/x"}, 403},
		{"X-Forwarded-Uri twice, same", []string{"X-API-Key", other, "X-Forwarded-Uri", "/x", "X-Forwarded-Uri", "/x"}, 200},
		{"X-Original-Uri twice", []string{"X-API-Key", other, "X-Original-Uri", "/x", "X-Original-Uri", "/admin"}, 403},
		{"X-Forwarded-Method twice", []string{"X-API-Key", other, "X-Forwarded-Method", "GET", "X-Forwarded-Method", "DELETE"}, 403},
		{"X-Original-Method twice", []string{"X-API-Key", other, "X-Original-Method", "GET", "X-Original-Method", "DELETE"}, 403},
		{"Authorization twice", []string{"Authorization", "Bearer " + other, "Authorization", "Bearer " + k}, 401},
		{"Authorization twice, same", []string{"Authorization", "Bearer " + other, "Authorization", "Bearer " + other}, 200},
		{"X-API-Key twice", []string{"X-API-Key", other, "X-API-Key", k}, 401},
		{"X-API-Key twice, one empty", []string{"X-API-Key", other, "X-API-Key", ""}, 401},
		{"Bearer and X-API-Key differ", []string{"Authorization", "Bearer " + other, "X-API-Key", k}, 401},
		{"Bearer and X-API-Key differ, one invalid", []string{"Authorization", "Bearer " + other, "X-API-Key", "kg_x"}, 401},
		{"Bearer and X-API-Key agree", []string{"Authorization", "Bearer " + other, "X-API-Key", other}, 200},
		{"Basic and X-API-Key", []string{"Authorization", "Basic Zm9vOmJhcg==", "X-API-Key", other}, 200},
	}
	addr := strings.TrimPrefix(ts.checkURL, "http://")
	for _, tt := range tests {
		var b strings.Builder
		b.WriteString("GET /v1/authz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
		for i := 0; i+1 < len(tt.hdr); i += 2 {
			b.WriteString(tt.hdr[i] + ": " + tt.hdr[i+1] + "\r\n")
		}
		b.WriteString("\r\n")
		r := rawRequest(t, addr, b.String())
		if r.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.want)
		}
	}
}
