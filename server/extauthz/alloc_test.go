//go:build !race

package extauthz_test

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/keygate/keygate/server/extauthz"
)

// TestAllocs measures Service.Check without the network: a denial is
// answered with a prebuilt response and allocates nothing; an allowed
// check builds its ok_response (the identity headers) and allocates a
// bounded number of times. gRPC's own decoding and encoding come on top
// (BENCHMARKS.md, "gRPC ext_authz").
func TestAllocs(t *testing.T) {
	f := newFixture(t)
	f.st.Close() // usage-log records are dropped, not written: nothing to flush
	a := extauthz.New(f.srv)
	for _, tt := range []struct {
		name string
		req  *authv3.CheckRequest
		want codes.Code
		max  float64
	}{
		{"allowed", envoyRequest("203.0.113.9", "GET", "/orders/1?x=1", map[string]string{"authorization": "Bearer " + f.secret}), codes.OK, 2},
		{"denied ip", envoyRequest("198.51.100.1", "GET", "/orders/1", map[string]string{"authorization": "Bearer " + f.secret}), codes.PermissionDenied, 0},
		{"denied key", envoyRequest("203.0.113.9", "GET", "/orders/1", map[string]string{"x-api-key": "kg_nope"}), codes.Unauthenticated, 0},
	} {
		var resp *authv3.CheckResponse
		n := testing.AllocsPerRun(1000, func() { resp, _ = a.Check(context.Background(), tt.req) })
		if got := codes.Code(resp.GetStatus().GetCode()); got != tt.want {
			t.Fatalf("%s: %v, want %v", tt.name, got, tt.want)
		}
		t.Logf("%s: %v allocations per Check", tt.name, n)
		if n > tt.max {
			t.Errorf("%s: %v allocations per Check, want at most %v", tt.name, n, tt.max)
		}
	}
}
