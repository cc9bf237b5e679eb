package extauthz_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/codes"
)

// BenchmarkTransport compares the two ways a proxy asks keygate in one
// run, on the same server, key and request: Envoy's gRPC ext_authz
// (Check over a loopback HTTP/2 connection) and HTTP forward-auth
// (GET /v1/authz with X-Forwarded-* over loopback keep-alive
// connections). Both are allowed checks under a route rule, with the
// usage log on; 8 × GOMAXPROCS concurrent clients. Client and server
// share the machine, so the allocations per op are both sides'.
func BenchmarkTransport(b *testing.B) {
	f := newFixture(b)
	b.Run("grpc", func(b *testing.B) {
		c := dial(b, f)
		req := envoyRequest("203.0.113.9", "GET", "/orders/17?page=2", map[string]string{"authorization": "Bearer " + f.secret})
		b.ReportAllocs()
		start := time.Now()
		b.SetParallelism(8) // 8 × GOMAXPROCS requests in flight, as from a busy proxy
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Check(context.Background(), req)
				if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
					b.Errorf("check: %v %v", resp, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
	})
	b.Run("http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &fasthttp.Server{Handler: f.srv.CheckHandler()}
		go hs.Serve(ln)
		b.Cleanup(func() { hs.Shutdown() })
		c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 512}
		b.ReportAllocs()
		start := time.Now()
		b.SetParallelism(8) // 8 × GOMAXPROCS requests in flight, as from a busy proxy
		b.RunParallel(func(pb *testing.PB) {
			var req fasthttp.Request
			var resp fasthttp.Response
			req.SetRequestURI("http://" + ln.Addr().String() + "/v1/authz")
			req.Header.Set("Authorization", "Bearer "+f.secret)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("X-Forwarded-Uri", "/orders/17?page=2")
			for pb.Next() {
				if err := c.Do(&req, &resp); err != nil || resp.StatusCode() != 200 {
					b.Errorf("authz: %d %v %s", resp.StatusCode(), err, resp.Body())
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
	})
}
