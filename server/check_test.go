package server

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const ipBody = `{"error":{"code":"IP_NOT_ALLOWED","message":"Request IP address is not in the API key's allowlist"}}`

// TestDecisionOrder walks every row of the product's decision order through
// both check endpoints.
func TestDecisionOrder(t *testing.T) {
	var clock testClock
	ts := startServer(t, func(c *Config) {
		c.Now = clock.Now
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Routes = []Route{{Prefix: "/orders", Scope: "orders:read"}, {Method: "POST", Prefix: "/orders", Scope: "orders:write"}}
	})
	restricted, restrictedSecret := ts.createKey(t, map[string]any{"name": "restricted", "scopes": []string{"orders:read"},
		"allowlist": []map[string]string{{"cidr": "203.0.113.0/24", "label": "office"}, {"cidr": "2001:db8::/48"}}})
	_, openSecret := ts.createKey(t, map[string]any{"name": "open", "scopes": []string{"orders:read"}})
	revoked, revokedSecret := ts.createKey(t, map[string]any{"name": "revoked", "scopes": []string{"orders:read"}})
	wantStatus(t, ts.admin(t, "DELETE", "/v1/keys/"+revoked, nil), 200, "revoke")
	_, expiredSecret := ts.createKey(t, map[string]any{"name": "expiring", "expires_at": clock.Now().Add(time.Minute)})
	clock.Advance(time.Minute)

	// An unknown secret of valid form: flip the random part, keep nothing else.
	unknown := "kg_" + strings.Repeat("A", 32) + "000000"

	tests := []struct {
		name, key, ip, scope, method string
		status                       int
		code                         string
	}{
		{"allowed v4 in range", restrictedSecret, "203.0.113.77", "orders:read", "GET", 200, ""},
		{"allowed v6 in range", restrictedSecret, "2001:db8:0:1::5", "orders:read", "GET", 200, ""},
		{"allowed v4-mapped v6", restrictedSecret, "::ffff:203.0.113.5", "orders:read", "GET", 200, ""},
		{"empty allowlist allows any IP", openSecret, "198.51.100.1", "orders:read", "GET", 200, ""},
		{"no scope required", restrictedSecret, "203.0.113.1", "", "GET", 200, ""},
		{"ip not allowed", restrictedSecret, "198.51.100.1", "orders:read", "GET", 403, "IP_NOT_ALLOWED"},
		{"ip not allowed v6", restrictedSecret, "2001:db9::1", "orders:read", "GET", 403, "IP_NOT_ALLOWED"},
		{"missing scope beats ip", restrictedSecret, "198.51.100.1", "orders:write", "POST", 403, "INSUFFICIENT_SCOPE"},
		{"unknown key", unknown, "203.0.113.5", "orders:read", "GET", 401, "INVALID_KEY"},
		{"malformed key", "kg_nope", "198.51.100.1", "orders:read", "GET", 401, "INVALID_KEY"},
		{"empty key", "", "198.51.100.1", "", "GET", 401, "INVALID_KEY"},
		{"revoked key, bad ip", revokedSecret, "198.51.100.1", "orders:read", "GET", 401, "INVALID_KEY"},
		{"expired key", expiredSecret, "198.51.100.1", "", "GET", 401, "INVALID_KEY"},
	}
	for _, tt := range tests {
		t.Run("check/"+tt.name, func(t *testing.T) {
			r := ts.check(t, tt.key, tt.ip, tt.scope)
			wantStatus(t, r, tt.status, "check")
			if tt.code != "" {
				if got := r.errCode(t); got != tt.code {
					t.Errorf("code %q, want %q", got, tt.code)
				}
			} else if m := r.json(t); m["allowed"] != true {
				t.Errorf("allowed body %s", r.body)
			}
			if tt.code == "IP_NOT_ALLOWED" && string(r.body) != ipBody {
				t.Errorf("body %s, want exactly %s", r.body, ipBody)
			}
		})
		t.Run("authz/"+tt.name, func(t *testing.T) {
			path := "/orders/42"
			if tt.scope == "" {
				path = "/public"
			}
			r := do(t, tt.method, ts.checkURL+"/v1/authz", nil, "Authorization", "Bearer "+tt.key,
				"X-Forwarded-For", tt.ip, "X-Forwarded-Method", tt.method, "X-Forwarded-Uri", path+"?q=1")
			wantStatus(t, r, tt.status, "authz")
			if got := r.header.Get(HeaderErrorCode); got != tt.code {
				t.Errorf("%s %q, want %q", HeaderErrorCode, got, tt.code)
			}
			if tt.code == "IP_NOT_ALLOWED" && string(r.body) != ipBody {
				t.Errorf("body %s, want exactly %s", r.body, ipBody)
			}
		})
	}
	// The restricted key's id shows up in the logs of its checks.
	page := ts.admin(t, "GET", "/v1/logs?key_id="+restricted+"&status=403", nil).json(t)
	if n := len(page["items"].([]any)); n < 4 {
		t.Errorf("got %d logged 403s for the restricted key, want at least 4", n)
	}
}

// TestAuthzResponse checks what proxies rely on: exact allow, deny headers
// and bodies, identity headers that are always present.
func TestAuthzResponse(t *testing.T) {
	ts := startServer(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "svc name", "scopes": []string{"a", "b:c"}})
	_ = id
	r := do(t, "GET", ts.checkURL+"/v1/authz", "ignored body", "X-API-Key", secret, "X-Keygate-Key-Id", "forged")
	wantStatus(t, r, 200, "allow")
	if len(r.body) != 0 {
		t.Errorf("allow body %q, want empty", r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
	if got := r.header.Get(HeaderKeyID); got != id {
		t.Errorf("%s %q, want %q", HeaderKeyID, got, id)
	}
	if got := r.header.Get(HeaderScopes); got != "a,b:c" {
		t.Errorf("%s %q", HeaderScopes, got)
	}
	if got := r.header.Get(HeaderKeyName); got != "svc name" {
		t.Errorf("%s %q", HeaderKeyName, got)
	}

	r = do(t, "POST", ts.checkURL+"/v1/authz/some/path?x=y", nil, "Authorization", "Bearer kg_wrong")
	wantStatus(t, r, 401, "deny")
	for _, h := range []string{HeaderKeyID, HeaderKeyName, HeaderScopes} {
		if v, ok := r.header[http.CanonicalHeaderKey(h)]; !ok || len(v) != 1 || v[0] != "" {
			t.Errorf("denied: header %s = %q, want present and empty", h, v)
		}
	}
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	if r.header.Get(HeaderErrorMessage) == "" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("deny headers %v", r.header)
	}
	// Basic credentials are not an API key; no key at all is a 401.
	wantStatus(t, do(t, "GET", ts.checkURL+"/v1/authz", nil, "Authorization", "Basic Zm9vOmJhcg=="), 401, "basic")
	wantStatus(t, do(t, "GET", ts.checkURL+"/v1/authz", nil), 401, "no key")
	// The admin token is never an API key.
	wantStatus(t, do(t, "GET", ts.checkURL+"/v1/authz", nil, "Authorization", "Bearer "+testToken), 401, "admin token as key")
	// Never a redirect, whatever the path looks like.
	for _, p := range []string{"/v1/authz/", "/v1/authz//x/../y"} {
		r := do(t, "GET", ts.checkURL+p, nil, "X-API-Key", secret)
		if r.status != 200 {
			t.Errorf("%s: status %d", p, r.status)
		}
	}
}

// TestAuthzClientIP covers trusted and untrusted peers, spoofed, repeated
// and garbage X-Forwarded-For hops, and X-Real-IP.
func TestAuthzClientIP(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		ts := startServer(t, func(c *Config) {
			c.AllowPrivateRanges = true
			if trusted {
				c.TrustedProxies = []string{"127.0.0.0/8", "198.51.100.10", "2001:db8:ffff::/48"}
			}
		})
		_, secret := ts.createKey(t, map[string]any{"name": "k",
			"allowlist": []map[string]string{{"cidr": "203.0.113.5"}, {"cidr": "2001:db8::1"}}})
		_, loopSecret := ts.createKey(t, map[string]any{"name": "loop", "allowlist": []map[string]string{{"cidr": "127.0.0.1"}}})
		_, openSecret := ts.createKey(t, map[string]any{"name": "open"})

		tests := []struct {
			name   string
			key    string
			hdr    []string
			status int // when the peer is trusted
			// untrusted is the status when the peer is not trusted: the
			// headers are ignored and the loopback peer is the client.
			untrusted int
		}{
			{"no headers: peer decides", secret, nil, 403, 403},
			{"peer itself allowed", loopSecret, []string{"X-Forwarded-For", "203.0.113.5"}, 403, 200},
			{"client in XFF", secret, []string{"X-Forwarded-For", "203.0.113.5"}, 200, 403},
			{"v6 client in XFF", secret, []string{"X-Forwarded-For", "2001:db8::1"}, 200, 403},
			{"trusted hops skipped", secret, []string{"X-Forwarded-For", "203.0.113.5, 198.51.100.10, 127.0.0.9"}, 200, 403},
			{"spoofed leftmost ignored", secret, []string{"X-Forwarded-For", "203.0.113.5, 198.51.100.99"}, 403, 403},
			{"repeated lines in order", secret, []string{"X-Forwarded-For", "198.51.100.99", "X-Forwarded-For", "203.0.113.5, 127.0.0.2"}, 200, 403},
			{"repeated lines, spoof first", secret, []string{"X-Forwarded-For", "203.0.113.5", "X-Forwarded-For", "198.51.100.99"}, 403, 403},
			{"garbage hop fails closed", secret, []string{"X-Forwarded-For", "203.0.113.5, garbage"}, 403, 403},
			{"garbage behind trusted hop", secret, []string{"X-Forwarded-For", "203.0.113.5, 1.2.3.4:80, 127.0.0.1"}, 403, 403},
			{"empty hop fails closed", secret, []string{"X-Forwarded-For", "203.0.113.5,,127.0.0.1"}, 403, 403},
			{"zone fails closed", secret, []string{"X-Forwarded-For", "2001:db8::1%eth0"}, 403, 403},
			{"leading zeros fail closed", secret, []string{"X-Forwarded-For", "203.0.113.005"}, 403, 403},
			{"garbage does not block an open key", openSecret, []string{"X-Forwarded-For", "garbage"}, 200, 200},
			{"all hops trusted: leftmost", loopSecret, []string{"X-Forwarded-For", "127.0.0.1, 127.0.0.3"}, 200, 200},
			{"X-Real-IP without XFF", secret, []string{"X-Real-IP", "203.0.113.5"}, 200, 403},
			{"XFF and X-Real-IP agree", secret, []string{"X-Real-IP", "203.0.113.5", "X-Forwarded-For", "203.0.113.5"}, 200, 403},
			{"XFF and X-Real-IP differ: allowed X-Real-IP", secret, []string{"X-Real-IP", "203.0.113.5", "X-Forwarded-For", "198.51.100.99"}, 403, 403},
			{"XFF and X-Real-IP differ: allowed XFF", secret, []string{"X-Real-IP", "198.51.100.1", "X-Forwarded-For", "203.0.113.9"}, 403, 403},
			{"XFF and X-Real-IP differ: open key unaffected", openSecret, []string{"X-Real-IP", "198.51.100.1", "X-Forwarded-For", "203.0.113.9"}, 200, 200},
			{"garbage X-Real-IP", secret, []string{"X-Real-IP", "nope"}, 403, 403},
			{"mapped v4 in XFF", secret, []string{"X-Forwarded-For", "::ffff:203.0.113.5"}, 200, 403},
			// A real-IP header naming a trusted proxy (Traefik behind a
			// load balancer sets X-Real-Ip to the balancer) says nothing
			// about the client: the X-Forwarded-For walk decides.
			{"X-Real-IP is a trusted proxy: XFF decides", secret, []string{"X-Real-IP", "198.51.100.10", "X-Forwarded-For", "203.0.113.5, 198.51.100.10"}, 200, 403},
			{"X-Real-IP is a trusted proxy: forged XFF hop still found", secret, []string{"X-Real-IP", "198.51.100.10", "X-Forwarded-For", "203.0.113.5, 198.51.100.99, 198.51.100.10"}, 403, 403},
			{"X-Real-IP is a trusted proxy: cannot pick a trusted address", loopSecret, []string{"X-Real-IP", "127.0.0.1", "X-Forwarded-For", "203.0.113.5"}, 403, 200},
			{"X-Real-IP is a trusted v6 proxy", secret, []string{"X-Real-IP", "2001:db8:ffff::1", "X-Forwarded-For", "2001:db8::1"}, 200, 403},
			{"X-Real-IP is a trusted proxy, no XFF: the peer", loopSecret, []string{"X-Real-IP", "198.51.100.10"}, 200, 200},
			{"X-Real-IP untrusted beside XFF walk still conflicts", secret, []string{"X-Real-IP", "198.51.100.11", "X-Forwarded-For", "203.0.113.5, 198.51.100.10"}, 403, 403},
			{"X-Real-IP twice, different", secret, []string{"X-Real-IP", "203.0.113.5", "X-Real-IP", "198.51.100.1"}, 403, 403},
			{"X-Real-IP twice, different, open key unaffected", openSecret, []string{"X-Real-IP", "203.0.113.5", "X-Real-IP", "198.51.100.1"}, 200, 200},
		}
		for _, tt := range tests {
			want := tt.untrusted
			if trusted {
				want = tt.status
			}
			hdr := append([]string{"X-API-Key", tt.key}, tt.hdr...)
			r := do(t, "GET", ts.checkURL+"/v1/authz", nil, hdr...)
			if r.status != want {
				t.Errorf("trusted=%v %s: status %d, want %d (%s)", trusted, tt.name, r.status, want, r.body)
			}
		}
	}
}

// TestAuthzRoutes checks how the method and URI reach the route rules.
func TestAuthzRoutes(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Routes = []Route{
			{Prefix: "/api", Scope: "api"},
			{Prefix: "/api/admin", Scope: "admin"},
			{Method: "DELETE", Prefix: "/api", Scope: "api:delete"},
			{Prefix: "/api/public", Scope: ""},
		}
	})
	_, secret := ts.createKey(t, map[string]any{"name": "k", "scopes": []string{"api"}})
	tests := []struct {
		name   string
		method string
		path   string
		hdr    []string
		want   int
	}{
		{"scope granted", "GET", "/v1/authz", []string{"X-Forwarded-Uri", "/api/orders"}, 200},
		{"longest prefix wins", "GET", "/v1/authz", []string{"X-Forwarded-Uri", "/api/admin/users"}, 403},
		{"method rule", "GET", "/v1/authz", []string{"X-Forwarded-Method", "DELETE", "X-Forwarded-Uri", "/api/x"}, 403},
		{"method rule, lower case", "GET", "/v1/authz", []string{"X-Original-Method", "delete", "X-Original-Uri", "/api/x"}, 403},
		{"exempt sub-path", "GET", "/v1/authz", []string{"X-Forwarded-Uri", "/api/public/x"}, 200},
		{"query ignored", "GET", "/v1/authz", []string{"X-Forwarded-Uri", "/other?p=/api/admin"}, 200},
		{"dot segments normalised", "GET", "/v1/authz", []string{"X-Forwarded-Uri", "/api/public/../admin/x"}, 403},
		{"percent-encoding decoded", "GET", "/v1/authz", []string{"X-Forwarded-Uri", "/api/%61dmin"}, 403},
		{"envoy path prefix", "GET", "/v1/authz/api/admin/x", nil, 403},
		{"envoy method", "DELETE", "/v1/authz/api/x", nil, 403},
		{"envoy allowed", "GET", "/v1/authz/api/x", nil, 200},
		{"no rule", "GET", "/v1/authz/elsewhere", nil, 200},
		{"both URI spellings agree", "GET", "/v1/authz", []string{"X-Forwarded-Uri", "/api/x", "X-Original-Uri", "/api/x"}, 200},
		{"URI spellings differ: fail closed", "GET", "/v1/authz", []string{"X-Original-Uri", "/api/admin/users", "X-Forwarded-Uri", "/api/public"}, 403},
		{"method spellings differ: fail closed", "GET", "/v1/authz", []string{"X-Original-Method", "DELETE", "X-Forwarded-Method", "GET", "X-Original-Uri", "/api/x"}, 403},
	}
	for _, tt := range tests {
		r := do(t, tt.method, ts.checkURL+tt.path, nil, append([]string{"Authorization", "Bearer " + secret}, tt.hdr...)...)
		if r.status != tt.want {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, r.status, tt.want, r.body)
		}
	}
	logs := ts.admin(t, "GET", "/v1/logs?limit=100", nil).json(t)["items"].([]any)
	var sawQuery bool
	for _, it := range logs {
		if strings.Contains(it.(map[string]any)["path"].(string), "?") {
			sawQuery = true
		}
	}
	if sawQuery {
		t.Errorf("a logged path kept its query string")
	}
}

// TestCheckBadRequests: malformed check requests are 400s with a message.
func TestCheckBadRequests(t *testing.T) {
	ts := startServer(t, nil)
	tests := []struct{ body, wantMsg string }{
		{``, "JSON object"},
		{`[]`, "JSON object"},
		{`{"key":"x"}`, `"ip" is required`},
		{`{"ip":"203.0.113.5"}`, `"key" is required`},
		{`{"key":"x","ip":"nope"}`, "IPv4 or IPv6"},
		{`{"key":"x","ip":"203.0.113.5:80"}`, "IPv4 or IPv6"},
		{`{"key":"x","ip":" 203.0.113.5"}`, "IPv4 or IPv6"},
		{`{"key":"x","ip":"203.0.113.5","extra":1}`, "unknown field"},
		{`{"key":"x","ip":"203.0.113.5","key":"y"}`, "twice"},
		{`{"key":1,"ip":"203.0.113.5"}`, "string"},
		{`{"key":"x","ip":"203.0.113.5"} x`, "after the JSON object"},
		{`{"key":"x\q","ip":"203.0.113.5"}`, "invalid JSON string"},
		{`{"key":"x","ip":"203.0.113.5",}`, "not valid JSON"},
	}
	for _, tt := range tests {
		r := do(t, "POST", ts.checkURL+"/v1/check", tt.body)
		if r.status != 400 || r.errCode(t) != "BAD_REQUEST" {
			t.Errorf("%s: status %d body %s, want 400 BAD_REQUEST", tt.body, r.status, r.body)
			continue
		}
		msg := r.json(t)["error"].(map[string]any)["message"].(string)
		if !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("%s: message %q, want it to mention %q", tt.body, msg, tt.wantMsg)
		}
	}
	wantStatus(t, do(t, "GET", ts.checkURL+"/v1/check", nil), 405, "GET /v1/check")
	// Escapes are decoded: a key sent with \u escapes still works.
	_, secret := ts.createKey(t, map[string]any{"name": "k"})
	esc := `\u006b\u0067` + secret[2:]
	r := do(t, "POST", ts.checkURL+"/v1/check", `{"key":"`+esc+`","ip":"203.0.113.5","scope":null,"path":"/a\/b"}`)
	wantStatus(t, r, 200, "escaped key")
}

// TestForwardAuthHeaderNames: the names readForwardAuth looks up without
// normalising them are in fasthttp's normal form, and so are the
// real-IP names it uses, whatever their configured spelling.
func TestForwardAuthHeaderNames(t *testing.T) {
	for _, name := range []string{reqAuthorization, reqAPIKey, reqForwardedMethod, reqOriginalMethod, reqForwardedURI, reqOriginalURI, reqXForwardedFor} {
		if norm := string(fasthttp.AppendNormalizedHeaderKey(nil, name)); norm != name {
			t.Errorf("%q is stored as %q", name, norm)
		}
	}
	live := compileLive(Config{RealIPHeaders: []string{"X-Real-IP", "cf-connecting-ip", "TRUE-CLIENT-IP"}})
	if want := []string{"X-Real-Ip", "Cf-Connecting-Ip", "True-Client-Ip"}; !slices.Equal(live.realIPNorm, want) {
		t.Errorf("realIPNorm %q, want %q", live.realIPNorm, want)
	}
}

// TestForwardAuthHeaderSpellings: headers a proxy sends in any case are
// read, repeated lines in different spellings are one header (and
// conflict when they differ), and the request header's normalisation is
// as it was after the check.
func TestForwardAuthHeaderSpellings(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.RealIPHeaders = []string{"CF-Connecting-IP"}
	})
	_, secret := ts.createKey(t, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	raw := func(hdr string) string {
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.checkURL, "http://"))
		must(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "GET /v1/authz HTTP/1.1\r\nHost: kg\r\nConnection: close\r\n"+hdr+"\r\n")
		must(t, err)
		b, err := io.ReadAll(conn)
		must(t, err)
		return string(b)
	}
	for _, tt := range []struct{ name, hdr, status string }{
		{"lower case", "x-api-key: " + secret + "\r\nx-forwarded-for: 203.0.113.7\r\n", "200"},
		{"upper case", "X-API-KEY: " + secret + "\r\nX-FORWARDED-FOR: 203.0.113.7\r\n", "200"},
		{"real-ip, odd case", "authorization: Bearer " + secret + "\r\ncf-connecting-ip: 203.0.113.7\r\n", "200"},
		{"real-ip outside", "authorization: Bearer " + secret + "\r\nCF-CONNECTING-IP: 198.51.100.7\r\n", "403"},
		{"key twice, two spellings, differing", "x-api-key: " + secret + "\r\nX-API-KEY: kg_other\r\nX-Forwarded-For: 203.0.113.7\r\n", "401"},
		{"uri twice, two spellings, differing", "X-Api-Key: " + secret + "\r\nX-Forwarded-For: 203.0.113.7\r\nx-original-uri: /a\r\nX-ORIGINAL-URI: /b\r\n", "403"},
	} {
		if got := raw(tt.hdr); !strings.HasPrefix(got, "HTTP/1.1 "+tt.status+" ") {
			t.Errorf("%s: %.60q, want status %s", tt.name, got, tt.status)
		}
	}

	// The handler leaves the request header's normalisation as it found it.
	h := ts.CheckHandler()
	for _, off := range []bool{false, true} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/v1/authz")
		ctx.Request.Header.Set("X-Api-Key", secret)
		if off {
			ctx.Request.Header.DisableNormalizing()
		}
		h(&ctx)
		if was := ctx.Request.Header.DisableNormalizing(); was != off {
			t.Errorf("normalisation off %v before the check, %v after", off, was)
		}
	}
}
