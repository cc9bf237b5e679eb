package server

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
)

// BenchmarkHandler measures one check through the fasthttp handler (no
// network), serially and in parallel.
func BenchmarkHandler(b *testing.B) {
	st := newFakeStore()
	st.discardLogs = true
	s, err := New(context.Background(), Config{AdminToken: testToken, TrustedProxies: []string{"10.0.0.0/8"}}, st)
	must(b, err)
	secret, hint := engine.NewSecret()
	var in []engine.EntryInput
	for i := range 20 {
		in = append(in, engine.EntryInput{CIDR: "203.0." + strconv.Itoa(i) + ".0/24"})
	}
	entries, err := engine.Policy{}.BuildAllowlist(in)
	must(b, err)
	_, err = st.CreateKey(context.Background(), &engine.Key{ID: "key_bench", Name: "bench", Hash: engine.HashSecret([]byte(secret)), Hint: hint, Allowlist: entries}, "test")
	must(b, err)
	must(b, s.keys.CatchUp(context.Background()))
	h := s.CheckHandler()
	peer := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	cases := []struct {
		name, uri, body, xff string
		more                 []string // further headers, name then value
	}{
		{"authz", "/v1/authz", "", "203.0.19.5", nil},
		// What nginx's auth_request sends for a browser's request: the
		// client's headers, then the forwarding ones of the location.
		{"authz-nginx", "/v1/authz", "", "203.0.19.5", []string{
			"Host", "api.example.com", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			"Accept", "application/json", "Accept-Encoding", "gzip, deflate, br", "Accept-Language", "en-GB,en;q=0.9",
			"Authorization", "Bearer " + secret, "X-Original-URI", "/orders/42?expand=items", "X-Original-Method", "GET",
			"X-Real-IP", "203.0.19.5",
		}},
		// The same with a browser's cookies (fasthttp parses them when
		// the headers are walked).
		{"authz-cookie", "/v1/authz", "", "203.0.19.5", []string{
			"Host", "api.example.com", "Authorization", "Bearer " + secret, "X-Original-URI", "/orders/42", "X-Original-Method", "GET",
			"Cookie", "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; session=" + strings.Repeat("s3cr3tv4lu3", 24) +
				"; theme=dark; consent=analytics%3Dyes%26ads%3Dno; locale=en-GB; cart=7f3a9c1e",
		}},
		{"check", "/v1/check", `{"key":"` + secret + `","ip":"203.0.19.5","method":"GET","path":"/x"}`, "", nil},
	}
	for _, c := range cases {
		setup := func(ctx *fasthttp.RequestCtx) {
			var req fasthttp.Request
			req.SetRequestURI(c.uri)
			if c.body != "" {
				req.Header.SetMethod("POST")
			}
			if c.more == nil {
				req.Header.Set("X-API-Key", secret)
			}
			req.Header.Set("X-Forwarded-For", c.xff)
			for i := 0; i+1 < len(c.more); i += 2 {
				req.Header.Set(c.more[i], c.more[i+1])
			}
			ctx.Init(&req, peer, nil)
		}
		run := func(ctx *fasthttp.RequestCtx) {
			if c.body != "" {
				ctx.Request.SetBodyString(c.body)
			}
			ctx.Response.Reset()
			h(ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		}
		b.Run(c.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			setup(&ctx)
			b.ReportAllocs()
			for b.Loop() {
				run(&ctx)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				setup(&ctx)
				for pb.Next() {
					run(&ctx)
				}
			})
		})
	}
}
