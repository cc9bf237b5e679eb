//go:build !race

package server

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
)

// TestNoAllocs proves that a check, through the fasthttp handler, does not
// allocate in steady state: forward-auth allowed and denied (with trusted
// proxies and X-Forwarded-For), with repeated header lines, and POST
// /v1/check.
func TestNoAllocs(t *testing.T) {
	st := newFakeStore()
	st.discardLogs = true
	s, err := New(context.Background(), Config{
		AdminToken:     testToken,
		TrustedProxies: []string{"10.0.0.0/8"},
		Routes:         []Route{{Prefix: "/orders", Scope: "orders:read"}},
	}, st)
	must(t, err)
	secret, hint := engine.NewSecret()
	entries, err := engine.Policy{}.BuildAllowlist([]engine.EntryInput{{CIDR: "203.0.113.0/24"}, {CIDR: "2001:db8::/48"}})
	must(t, err)
	_, err = st.CreateKey(context.Background(), &engine.Key{ID: engine.NewKeyID(), Name: "k", Scopes: []string{"orders:read", "x"},
		Hash: engine.HashSecret([]byte(secret)), Hint: hint, Allowlist: entries}, "test")
	must(t, err)
	// A report-only key with an expired entry, rotated: its previous
	// secret, in the overlap, is the one presented.
	roSecret, roHint := engine.NewSecret()
	past := time.Now().Add(-time.Minute)
	roID := engine.NewKeyID()
	_, err = st.CreateKey(context.Background(), &engine.Key{ID: roID, Name: "ro", Scopes: []string{"orders:read"},
		Hash: engine.HashSecret([]byte(roSecret)), Hint: roHint, ReportOnly: true,
		Allowlist: []engine.Entry{{ID: "ent_a", Prefix: netip.MustParsePrefix("203.0.113.0/24")},
			{ID: "ent_b", Prefix: netip.MustParsePrefix("198.51.100.0/24"), ExpiresAt: past}}}, "test")
	must(t, err)
	_, err = st.UpdateKey(context.Background(), roID, "test", "key.rotate", func(k *engine.Key) error {
		k.Rotate(time.Now(), time.Hour)
		return nil
	})
	must(t, err)
	must(t, s.keys.CatchUp(context.Background()))
	h := s.CheckHandler()
	peer := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 4000}
	// Another secret: the last character changed (to "x", or to "y" when
	// it is "x": the fixed "x" made the wrong key the right one for one
	// secret in 62).
	wrong := secret[:len(secret)-1] + "x"
	if secret[len(secret)-1] == 'x' {
		wrong = secret[:len(secret)-1] + "y"
	}

	authz := func(xff string, key string) func(*fasthttp.Request) {
		return func(req *fasthttp.Request) {
			req.Header.SetMethod("GET")
			req.SetRequestURI("/v1/authz")
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("X-Forwarded-Uri", "/orders/17?page=2")
			req.Header.Add("X-Forwarded-For", "198.51.100.7")
			req.Header.Add("X-Forwarded-For", xff+", 10.0.0.1")
		}
	}
	// Repeated lines of the headers read once: the same value twice
	// (allowed), different values (fail closed), and a real-IP header
	// naming a trusted proxy beside the walk.
	repeated := func(uri2, key2 string) func(*fasthttp.Request) {
		return func(req *fasthttp.Request) {
			authz("203.0.113.9", secret)(req)
			req.Header.Add("X-Forwarded-Uri", uri2)
			req.Header.Add("X-Api-Key", key2)
			req.Header.Add("X-Real-IP", "10.0.0.1")
			req.Header.Add("X-Real-IP", "10.0.0.1")
		}
	}
	// A browser's cookies (the header pass has fasthttp collect them),
	// and more X-Forwarded-For lines than the pass holds (PeekAll).
	cookies := func(req *fasthttp.Request) {
		authz("203.0.113.9", secret)(req)
		req.Header.Set("Cookie", "session=abc123; theme=dark; consent=yes")
	}
	manyXFF := func(req *fasthttp.Request) {
		authz("203.0.113.9", secret)(req)
		for range passXFFLines {
			req.Header.Add("X-Forwarded-For", "10.0.0.2")
		}
	}
	checkWith := func(key, ip string) func(*fasthttp.Request) {
		return func(req *fasthttp.Request) {
			req.Header.SetMethod("POST")
			req.SetRequestURI("/v1/check")
			req.SetBodyString(`{"key":"` + key + `","ip":"` + ip + `","scope":"orders:read","method":"GET","path":"/orders/\u0031"}`)
		}
	}
	check := func(ip string) func(*fasthttp.Request) { return checkWith(secret, ip) }
	tests := []struct {
		name  string
		setup func(*fasthttp.Request)
		want  int
	}{
		{"authz allowed", authz("203.0.113.9", secret), 200},
		{"authz denied ip", authz("192.0.2.1", secret), 403},
		{"authz invalid key", authz("203.0.113.9", wrong), 401},
		{"authz repeated headers agree", repeated("/orders/17?page=2", secret), 200},
		{"authz repeated URI differs", repeated("/other", secret), 403},
		{"authz repeated key differs", repeated("/orders/17?page=2", wrong), 401},
		{"authz with cookies", cookies, 200},
		{"authz with more X-Forwarded-For lines than the pass holds", manyXFF, 200},
		{"check allowed v6", check("2001:db8::77"), 200},
		{"check denied ip", check("198.51.100.1"), 403},
		{"check report-only miss (expired entry), previous secret", checkWith(roSecret, "198.51.100.1"), 200},
		{"check report-only hit, previous secret", checkWith(roSecret, "203.0.113.1"), 200},
		{"authz report-only miss, previous secret", authz("192.0.2.1", roSecret), 200},
	}
	for _, tt := range tests {
		var req fasthttp.Request
		tt.setup(&req)
		body := append([]byte(nil), req.Body()...)
		var ctx fasthttp.RequestCtx
		run := func() {
			// The check decodes its body in place; restore it each time.
			ctx.Request.SetBody(body)
			ctx.Response.Reset()
			h(&ctx)
		}
		ctx.Init(&req, peer, nil)
		run()
		if got := ctx.Response.StatusCode(); got != tt.want {
			t.Fatalf("%s: status %d, want %d: %s", tt.name, got, tt.want, ctx.Response.Body())
		}
		if n := testing.AllocsPerRun(1000, run); n != 0 {
			t.Errorf("%s: %v allocations per check, want 0", tt.name, n)
		}
		// The measured runs decided as the first did (sink and check).
		if got := ctx.Response.StatusCode(); got != tt.want {
			t.Errorf("%s: measured runs answered %d, want %d", tt.name, got, tt.want)
		}
	}
}
