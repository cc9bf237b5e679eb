package server

import (
	"context"
	"net"
	"strconv"
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
	cases := []struct{ name, uri, body, xff string }{
		{"authz", "/v1/authz", "", "203.0.19.5"},
		{"check", "/v1/check", `{"key":"` + secret + `","ip":"203.0.19.5","method":"GET","path":"/x"}`, ""},
	}
	for _, c := range cases {
		setup := func(ctx *fasthttp.RequestCtx) {
			var req fasthttp.Request
			req.SetRequestURI(c.uri)
			if c.body != "" {
				req.Header.SetMethod("POST")
			}
			req.Header.Set("X-API-Key", secret)
			req.Header.Set("X-Forwarded-For", c.xff)
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
