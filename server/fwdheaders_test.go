package server

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The pass over the headers (fwdHeaders.read) decides every forward-auth
// request as reading them name by name (peekUnique, PeekAll) does: the
// key, the forwarded method and URI and their conflicts, and the client
// address, for trusted and untrusted peers and several real-IP settings.
// The requests are random header sets from names in any case (the
// decision's, one of them on several lines, and others fasthttp keeps
// apart: Host, Cookie, User-Agent...) and values that agree, differ only
// in spaces, or differ, parsed from the wire.
func TestHeaderPassAsPeek(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 16))
	for i := range 3000 {
		raw := randomAuthzRequest(r)
		for _, realIP := range [][]string{nil, {"X-Real-IP"}, {"X-Client-IP", "X-Real-IP"}, {"CF-Connecting-IP", "True-Client-IP", "X-Client-IP", "X-Real-IP"},
			{"A", "B", "C", "D", "X-Real-IP"}, {"Cookie", "X-Real-IP"}, {"X-Forwarded-For"}} {
			if realIP == nil {
				realIP = []string{}
			}
			live := compileLive(Config{RealIPHeaders: realIP, TrustedProxies: []string{"10.0.0.0/8", "unix"}})
			peek := *live
			peek.realIPPass = false
			for _, from := range []peer{{addr: netip.MustParseAddr("10.0.0.1")}, {addr: netip.MustParseAddr("198.51.100.1")}, {unix: true}} {
				got := decideHeaders(t, raw, from, live)
				want := decideHeaders(t, raw, from, &peek)
				if got != want {
					t.Fatalf("request %d, real-IP %q, peer %+v:\n%s\npass: %s\npeek: %s", i, realIP, from, raw, got, want)
				}
			}
		}
	}
}

// decideHeaders parses raw and describes what readForwardAuth reads of it.
func decideHeaders(t *testing.T, raw string, from peer, live *liveSettings) string {
	t.Helper()
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	key, method, mc, uri, uc, ip := readForwardAuth(&req.Header, from, live)
	return fmt.Sprintf("key %q method %q %v uri %q %v ip %v", key, method, mc, uri, uc, ip)
}

var (
	passNames = []string{"Authorization", "X-API-Key", "X-Forwarded-Method", "X-Original-Method", "X-Forwarded-Uri", "X-Original-URI",
		"X-Forwarded-For", "X-Real-IP", "X-Client-IP", "True-Client-IP", "CF-Connecting-IP", "Cookie", "User-Agent", "Content-Type", "Accept", "B"}
	passValues = map[string][]string{
		"Authorization":      {"Bearer kg_aaaa", "Bearer  kg_aaaa ", "bearer kg_bbbb", "Basic eDp5", ""},
		"X-API-Key":          {"kg_aaaa", " kg_aaaa", "kg_bbbb", ""},
		"X-Forwarded-Method": {"GET", "POST", " GET", ""},
		"X-Original-Method":  {"GET", "DELETE", ""},
		"X-Forwarded-Uri":    {"/orders", "/orders?x=1", "/admin", "http://h/orders", ""},
		"X-Original-URI":     {"/orders", "/x/../admin", ""},
		"X-Forwarded-For":    {"203.0.113.5", "203.0.113.5, 10.0.0.2", " 198.51.100.7 ", "junk", "10.0.0.3", "2001:db8::1, 10.0.0.1", ""},
	}
	passAddrs = []string{"203.0.113.5", "198.51.100.7", "10.0.0.4", " 203.0.113.5", "junk", "::ffff:203.0.113.5", ""}
)

// randomAuthzRequest is a forward-auth request with 0 to 12 random header
// lines.
func randomAuthzRequest(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString("GET /v1/authz HTTP/1.1\r\nHost: h\r\n")
	for range r.IntN(13) {
		name := passNames[r.IntN(len(passNames))]
		vals, ok := passValues[name]
		if !ok {
			vals = passAddrs
		}
		switch r.IntN(3) { // the name as sent: as written, lower case, upper case
		case 1:
			name = strings.ToLower(name)
		case 2:
			name = strings.ToUpper(name)
		}
		fmt.Fprintf(&b, "%s: %s\r\n", name, vals[r.IntN(len(vals))])
	}
	b.WriteString("\r\n")
	return b.String()
}
