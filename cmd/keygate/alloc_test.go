//go:build !race

package main

import (
	"context"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/server"
	badgerstore "github.com/keygate/keygate/store/badger"
)

// TestNoAllocsRealStore: the check handler wired to the real store through
// the adapter, usage log included, does not allocate per check.
func TestNoAllocsRealStore(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.DefaultOptions("").WithInMemory(true))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	secret, hint := engine.NewSecret()
	entries, err := engine.Policy{}.BuildAllowlist([]engine.EntryInput{{CIDR: "203.0.113.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	k := &engine.Key{ID: engine.NewKeyID(), Name: "k", Hash: engine.HashSecret([]byte(secret)), Hint: hint, Allowlist: entries}
	if _, err := st.CreateKey(context.Background(), k, "test"); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), server.Config{AdminToken: "test-admin-token-0123456789"}, st)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.CheckHandler()
	for _, tt := range []struct {
		name, body string
		want       int
	}{
		{"allowed", `{"key":"` + secret + `","ip":"203.0.113.5","method":"GET","path":"/x"}`, 200},
		{"denied", `{"key":"` + secret + `","ip":"198.51.100.5","method":"GET","path":"/x"}`, 403},
	} {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/v1/check")
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
		run := func() {
			ctx.Request.SetBodyString(tt.body)
			ctx.Response.Reset()
			h(&ctx)
		}
		run()
		if got := ctx.Response.StatusCode(); got != tt.want {
			t.Fatalf("%s: status %d, want %d", tt.name, got, tt.want)
		}
		// Fewer runs than the log buffer holds, so nothing is dropped.
		if n := testing.AllocsPerRun(500, run); n != 0 {
			t.Errorf("%s: %v allocations per check, want 0", tt.name, n)
		}
		// The measured runs decided as the first did (sink and check).
		if got := ctx.Response.StatusCode(); got != tt.want {
			t.Errorf("%s: measured runs answered %d, want %d", tt.name, got, tt.want)
		}
	}
	if s := st.LogStats(); s.Dropped != 0 {
		t.Errorf("%d records dropped", s.Dropped)
	}
}
