package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/engine"
)

// TestCheckAnswerBytes pins the check path's answers byte for byte as a
// client reads them off the connection: status line, every header in its
// order and spelling, and body (the Date header's value aside). All go over
// one keep-alive connection, so an answer that kept a header of the one
// before would show.
func TestCheckAnswerBytes(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Routes = []Route{{Prefix: "/orders", Scope: "orders:read"}}
	})
	ctx := context.Background()
	secret, hint := engine.NewSecret()
	_, err := ts.st.CreateKey(ctx, &engine.Key{ID: "key_wire", Name: "wire \"key\" \\ ü\x01\u2028", Scopes: []string{"orders:read", "x\ty"},
		Hash: engine.HashSecret([]byte(secret)), Hint: hint,
		Allowlist: []engine.Entry{{ID: "ent_wire", Prefix: netip.MustParsePrefix("203.0.113.0/24")}}}, "test")
	must(t, err)
	openSecret, openHint := engine.NewSecret()
	_, err = ts.st.CreateKey(ctx, &engine.Key{ID: "key_open", Name: "open", Hash: engine.HashSecret([]byte(openSecret)), Hint: openHint}, "test")
	must(t, err)
	roSecret, roHint := engine.NewSecret()
	_, err = ts.st.CreateKey(ctx, &engine.Key{ID: "key_ro", Name: "ro", Hash: engine.HashSecret([]byte(roSecret)), Hint: roHint, ReportOnly: true,
		Allowlist: []engine.Entry{{ID: "ent_ro", Prefix: netip.MustParsePrefix("203.0.113.0/24")}}}, "test")
	must(t, err)
	must(t, ts.keys.CatchUp(ctx))

	check := func(body string) string {
		return "POST /v1/check HTTP/1.1\r\nHost: kg\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	authz := func(hdr string) string { return "GET /v1/authz HTTP/1.1\r\nHost: kg\r\n" + hdr + "\r\n" }
	const (
		okHead   = "HTTP/1.1 200 OK\r\nServer: keygate\r\nDate: D\r\nContent-Type: application/json\r\nContent-Length: "
		ipDenied = "HTTP/1.1 403 Forbidden\r\nServer: keygate\r\nDate: D\r\nContent-Type: application/json\r\nContent-Length: 100\r\nCache-Control: no-store\r\n" +
			"X-Keygate-Error-Code: IP_NOT_ALLOWED\r\nX-Keygate-Error-Message: Request IP address is not in the API key's allowlist\r\n\r\n" + ipBody
		badKey = "HTTP/1.1 401 Unauthorized\r\nServer: keygate\r\nDate: D\r\nContent-Type: application/json\r\nContent-Length: 107\r\nCache-Control: no-store\r\n" +
			"X-Keygate-Error-Code: INVALID_KEY\r\nX-Keygate-Error-Message: The API key is missing, malformed, unknown, revoked or expired\r\n" +
			"Www-Authenticate: Bearer realm=\"keygate\", error=\"invalid_token\"\r\n\r\n" +
			`{"error":{"code":"INVALID_KEY","message":"The API key is missing, malformed, unknown, revoked or expired"}}`
	)
	tests := []struct{ name, req, want string }{
		{"check allowed", check(`{"key":"` + secret + `","ip":"203.0.113.5","scope":"orders:read","method":"GET","path":"/orders/1?x"}`),
			okHead + "99\r\nCache-Control: no-store\r\n\r\n" +
				`{"allowed":true,"key_id":"key_wire","key_name":"wire \"key\" \\ ü\u0001` + "\u2028" + `","entry_id":"ent_wire"}`},
		{"check allowed, no entry", check(`{"key":"` + openSecret + `","ip":"198.51.100.1"}`),
			okHead + "70\r\nCache-Control: no-store\r\n\r\n" + `{"allowed":true,"key_id":"key_open","key_name":"open","entry_id":null}`},
		{"check report-only miss", check(`{"key":"` + roSecret + `","ip":"198.51.100.1"}`),
			okHead + "66\r\nCache-Control: no-store\r\n\r\n" + `{"allowed":true,"key_id":"key_ro","key_name":"ro","entry_id":null}`},
		{"check ip denied", check(`{"key":"` + secret + `","ip":"198.51.100.1"}`), ipDenied},
		{"check invalid key", check(`{"key":"kg_nope","ip":"203.0.113.5"}`), badKey},
		{"check scope denied", check(`{"key":"` + secret + `","ip":"203.0.113.5","scope":"admin"}`),
			"HTTP/1.1 403 Forbidden\r\nServer: keygate\r\nDate: D\r\nContent-Type: application/json\r\nContent-Length: 109\r\nCache-Control: no-store\r\n" +
				"X-Keygate-Error-Code: INSUFFICIENT_SCOPE\r\nX-Keygate-Error-Message: The API key does not have the scope this request requires\r\n\r\n" +
				`{"error":{"code":"INSUFFICIENT_SCOPE","message":"The API key does not have the scope this request requires"}}`},
		{"check bad json", check(`{"key":"x","ip":"203.0.113.5","key":"y"}`),
			"HTTP/1.1 400 Bad Request\r\nServer: keygate\r\nDate: D\r\nContent-Type: application/json\r\nContent-Length: 87\r\nCache-Control: no-store\r\n" +
				"X-Keygate-Error-Code: BAD_REQUEST\r\nX-Keygate-Error-Message: a field appears twice in the check request\r\n\r\n" +
				`{"error":{"code":"BAD_REQUEST","message":"a field appears twice in the check request"}}`},
		{"check bad ip", check(`{"key":"x","ip":"203.0.113.05"}`),
			"HTTP/1.1 400 Bad Request\r\nServer: keygate\r\nDate: D\r\nContent-Type: application/json\r\nContent-Length: 133\r\nCache-Control: no-store\r\n" +
				"X-Keygate-Error-Code: BAD_REQUEST\r\nX-Keygate-Error-Message: " + msgInvalidIP + "\r\n\r\n" +
				`{"error":{"code":"BAD_REQUEST","message":"the field \"ip\" must be a plain IPv4 or IPv6 address such as 203.0.113.5 or 2001:db8::1"}}`},
		{"check GET", "GET /v1/check HTTP/1.1\r\nHost: kg\r\n\r\n",
			"HTTP/1.1 405 Method Not Allowed\r\nServer: keygate\r\nDate: D\r\nContent-Type: application/json\r\nContent-Length: 75\r\nCache-Control: no-store\r\n\r\n" +
				`{"error":{"code":"METHOD_NOT_ALLOWED","message":"use POST for /v1/check"}}` + "\n"},
		{"authz allowed", authz("Authorization: Bearer " + secret + "\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: /orders/2\r\n"),
			"HTTP/1.1 200 OK\r\nServer: keygate\r\nDate: D\r\nContent-Length: 0\r\nCache-Control: no-store\r\n" +
				"X-Keygate-Key-Id: key_wire\r\nX-Keygate-Key-Name: wire \"key\" \\ ü \u2028\r\nX-Keygate-Scopes: orders:read,x y\r\n\r\n"},
		{"authz ip denied", authz("X-Api-Key: " + secret + "\r\nX-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Uri: /orders/2\r\n"),
			strings.Replace(ipDenied, "Cache-Control: no-store\r\n", "Cache-Control: no-store\r\nX-Keygate-Key-Id: \r\nX-Keygate-Key-Name: \r\nX-Keygate-Scopes: \r\n", 1)},
		{"authz invalid key", authz("X-Api-Key: kg_nope\r\n"),
			strings.Replace(badKey, "Cache-Control: no-store\r\n", "Cache-Control: no-store\r\nX-Keygate-Key-Id: \r\nX-Keygate-Key-Name: \r\nX-Keygate-Scopes: \r\n", 1)},
		{"authz report-only miss", authz("X-Api-Key: " + roSecret + "\r\nX-Forwarded-For: 198.51.100.1\r\n"),
			"HTTP/1.1 200 OK\r\nServer: keygate\r\nDate: D\r\nContent-Length: 0\r\nCache-Control: no-store\r\n" +
				"X-Keygate-Key-Id: key_ro\r\nX-Keygate-Key-Name: ro\r\nX-Keygate-Scopes: \r\n\r\n"},
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.checkURL, "http://"), 5*time.Second)
	must(t, err)
	defer conn.Close()
	must(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	br := bufio.NewReader(conn)
	date := regexp.MustCompile("\r\nDate: [^\r]*\r\n")
	for _, round := range []string{"first", "again"} {
		for _, tt := range tests {
			_, err := io.WriteString(conn, tt.req)
			must(t, err)
			got, err := readAnswer(br)
			if err != nil {
				t.Fatalf("%s (%s): %v", tt.name, round, err)
			}
			if got = date.ReplaceAllString(got, "\r\nDate: D\r\n"); got != tt.want {
				t.Errorf("%s (%s):\n got %q\nwant %q", tt.name, round, got, tt.want)
			}
		}
	}
}

// readAnswer reads one HTTP/1.1 response with a Content-Length, as sent.
func readAnswer(br *bufio.Reader) (string, error) {
	var b strings.Builder
	n := -1
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return b.String(), err
		}
		b.WriteString(line)
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			if n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return b.String(), err
			}
		}
	}
	if n < 0 {
		return b.String(), fmt.Errorf("no Content-Length in %q", b.String())
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return b.String(), err
	}
	b.Write(body)
	return b.String(), nil
}
