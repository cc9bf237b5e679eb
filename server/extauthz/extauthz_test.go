package extauthz_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/server/extauthz"
	badgerstore "github.com/keygate/keygate/store/badger"
	"github.com/keygate/keygate/usagelog"
)

const ipBody = `{"error":{"code":"IP_NOT_ALLOWED","message":"Request IP address is not in the API key's allowlist"}}`

// fixture is a server over an in-memory store with one key restricted to
// 203.0.113.0/24 and 2001:db8::/48 holding orders:read, and the route
// rule /orders → orders:read.
type fixture struct {
	srv    *server.Server
	st     *badgerstore.Store
	secret string
	keyID  string
	// reportSecret is a report-only key's, holding orders:read.
	reportSecret string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.DefaultOptions("").WithInMemory(true).WithFlushInterval(time.Hour))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	secret, hint := engine.NewSecret()
	entries, err := engine.Policy{}.BuildAllowlist([]engine.EntryInput{{CIDR: "203.0.113.0/24"}, {CIDR: "2001:db8::/48"}})
	require.NoError(t, err)
	k := &engine.Key{ID: engine.NewKeyID(), Name: "ci\nbot", Scopes: []string{"orders:read", "x"},
		Hash: engine.HashSecret([]byte(secret)), Hint: hint, Allowlist: entries}
	_, err = st.CreateKey(context.Background(), k, "test")
	require.NoError(t, err)
	// A report-only key with the same allowlist: outside it, let through.
	reportSecret, reportHint := engine.NewSecret()
	_, err = st.CreateKey(context.Background(), &engine.Key{ID: engine.NewKeyID(), Name: "report", Scopes: []string{"orders:read"},
		Hash: engine.HashSecret([]byte(reportSecret)), Hint: reportHint, Allowlist: entries, ReportOnly: true}, "test")
	require.NoError(t, err)
	srv, err := server.New(context.Background(), server.Config{
		AdminToken: "test-admin-token-0123456789",
		Routes:     []server.Route{{Prefix: "/orders", Scope: "orders:read"}},
		// For the HTTP side of BenchmarkTransport; gRPC never reads
		// forwarded headers.
		TrustedProxies: []string{"127.0.0.1"},
	}, st)
	require.NoError(t, err)
	return &fixture{srv: srv, st: st, secret: secret, keyID: k.ID, reportSecret: reportSecret}
}

// envoyRequest is a CheckRequest shaped as Envoy's ext_authz filter
// (gRPC service, transport_api_version V3, no request body) sends one:
// source and destination socket addresses, the request's time, and the
// HTTP attributes with the headers lower-cased (pseudo-headers
// included), host, path (the request target with its query), method,
// scheme, protocol and the request id.
func envoyRequest(ip, method, target string, headers map[string]string) *authv3.CheckRequest {
	hs := map[string]string{
		":authority":        "api.example.com",
		":method":           method,
		":path":             target,
		":scheme":           "https",
		"user-agent":        "curl/8.5.0",
		"accept":            "*/*",
		"x-forwarded-proto": "https",
		"x-request-id":      "7c1f0d6e-2b1a-4e0f-9a52-2f1d6c5e4b3a",
	}
	for k, v := range headers {
		hs[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: sockAddr(ip, 50312)},
		Destination: &authv3.AttributeContext_Peer{
			Address: sockAddr("10.0.0.5", 8000),
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       "12884721093158491234",
				Method:   method,
				Headers:  hs,
				Path:     target,
				Host:     "api.example.com",
				Scheme:   "https",
				Protocol: "HTTP/1.1",
			},
		},
		MetadataContext: &corev3.Metadata{},
	}}
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol: corev3.SocketAddress_TCP, Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// dial serves the service on a loopback port and returns a client.
func dial(t testing.TB, f *fixture) authv3.AuthorizationClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := grpc.NewServer()
	extauthz.New(f.srv).Register(g)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func headerMap(hs []*corev3.HeaderValueOption) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		// The deprecated append field stays unset: append_action says it.
		appendSet := h.ProtoReflect().Has(h.ProtoReflect().Descriptor().Fields().ByName("append"))
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || appendSet {
			m["!append "+h.GetHeader().GetKey()] = h.GetAppendAction().String()
		}
		m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return m
}

// TestCheck sends Envoy-shaped CheckRequests over a real gRPC connection
// and checks each answer as Envoy reads it, and the usage log.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f)
	bearer := "Bearer " + f.secret
	unknown := "kg_" + strings.Repeat("A", 32) + "000000"
	tests := []struct {
		name          string
		ip, method    string
		target        string
		headers       map[string]string
		code          codes.Code
		status        int    // HTTP status of the denied_response
		errCode       string // x-keygate-error-code
		logPath       string // the usage log's path
		removeHeaders []string
		report        bool // the report-only key
	}{
		{name: "allowed bearer", ip: "203.0.113.9", method: "GET", target: "/orders/17?page=2",
			headers: map[string]string{"authorization": bearer}, code: codes.OK, logPath: "/orders/17"},
		{name: "allowed x-api-key v6", ip: "2001:db8::7", method: "GET", target: "/orders/17",
			headers: map[string]string{"x-api-key": f.secret}, code: codes.OK, logPath: "/orders/17"},
		{name: "allowed v4-mapped source", ip: "::ffff:203.0.113.9", method: "GET", target: "/public",
			headers: map[string]string{"authorization": bearer}, code: codes.OK, logPath: "/public"},
		{name: "allowed absolute form", ip: "203.0.113.9", method: "GET", target: "https://api.example.com/orders/1?x",
			headers: map[string]string{"authorization": bearer}, code: codes.OK, logPath: "/orders/1"},
		{name: "repeated lines agree", ip: "203.0.113.9", method: "GET", target: "/orders/1",
			headers: map[string]string{"authorization": bearer + ", " + bearer, "x-api-key": f.secret + "," + f.secret}, code: codes.OK, logPath: "/orders/1"},
		{name: "client identity headers removed", ip: "203.0.113.9", method: "GET", target: "/orders/1",
			headers: map[string]string{"authorization": bearer, "x-keygate-key-id": "forged", "x_keygate_key_id": "forged",
				"x-keygate_scopes": "admin", "x-keygate-error-code": "x", "x-keygateway": "kept"},
			code: codes.OK, logPath: "/orders/1", removeHeaders: []string{"x-keygate-error-code", "x-keygate_scopes", "x_keygate_key_id"}},
		{name: "report-only key outside its allowlist", ip: "198.51.100.1", method: "GET", target: "/orders/3",
			headers: map[string]string{"x-api-key": f.reportSecret}, code: codes.OK, logPath: "/orders/3", report: true},
		{name: "ip not allowed", ip: "198.51.100.1", method: "GET", target: "/orders/1",
			headers: map[string]string{"authorization": bearer}, code: codes.PermissionDenied, status: 403, errCode: "IP_NOT_ALLOWED", logPath: "/orders/1"},
		{name: "no source address", ip: "", method: "GET", target: "/orders/1",
			headers: map[string]string{"authorization": bearer}, code: codes.PermissionDenied, status: 403, errCode: "IP_NOT_ALLOWED", logPath: "/orders/1"},
		{name: "scope beats ip", ip: "198.51.100.1", method: "POST", target: "/orders/../admin",
			headers: map[string]string{"authorization": bearer}, code: codes.PermissionDenied, status: 403, errCode: "INSUFFICIENT_SCOPE", logPath: "/orders/../admin"},
		{name: "encoded slash is ambiguous", ip: "203.0.113.9", method: "GET", target: "/public%2f..%2forders",
			headers: map[string]string{"authorization": bearer}, code: codes.PermissionDenied, status: 403, errCode: "INSUFFICIENT_SCOPE", logPath: "/public%2f..%2forders"},
		{name: "not a path", ip: "203.0.113.9", method: "OPTIONS", target: "*",
			headers: map[string]string{"authorization": bearer}, code: codes.PermissionDenied, status: 403, errCode: "INSUFFICIENT_SCOPE", logPath: "*"},
		{name: "unknown key", ip: "203.0.113.9", method: "GET", target: "/orders/1",
			headers: map[string]string{"authorization": "Bearer " + unknown}, code: codes.Unauthenticated, status: 401, errCode: "INVALID_KEY", logPath: "/orders/1"},
		{name: "no key", ip: "198.51.100.1", method: "GET", target: "/public",
			code: codes.Unauthenticated, status: 401, errCode: "INVALID_KEY", logPath: "/public"},
		{name: "repeated lines differ", ip: "203.0.113.9", method: "GET", target: "/orders/1",
			headers: map[string]string{"authorization": bearer + ",Bearer " + unknown}, code: codes.Unauthenticated, status: 401, errCode: "INVALID_KEY", logPath: "/orders/1"},
		{name: "bearer and x-api-key differ", ip: "203.0.113.9", method: "GET", target: "/orders/1",
			headers: map[string]string{"authorization": bearer, "x-api-key": unknown}, code: codes.Unauthenticated, status: 401, errCode: "INVALID_KEY", logPath: "/orders/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Check(context.Background(), envoyRequest(tt.ip, tt.method, tt.target, tt.headers))
			require.NoError(t, err)
			require.Equal(t, int32(tt.code), resp.GetStatus().GetCode(), "status %v", resp.GetStatus())
			if tt.code == codes.OK {
				ok := resp.GetOkResponse()
				require.NotNil(t, ok, "ok_response")
				if tt.report {
					require.Equal(t, "report", headerMap(ok.GetHeaders())["x-keygate-key-name"])
					return
				}
				require.Equal(t, map[string]string{"x-keygate-key-id": f.keyID, "x-keygate-key-name": "ci bot", "x-keygate-scopes": "orders:read,x"},
					headerMap(ok.GetHeaders()))
				require.ElementsMatch(t, tt.removeHeaders, ok.GetHeadersToRemove())
				return
			}
			d := resp.GetDeniedResponse()
			require.NotNil(t, d, "denied_response")
			require.Equal(t, tt.status, int(d.GetStatus().GetCode()))
			want := map[string]string{"content-type": "application/json", "cache-control": "no-store",
				"x-keygate-error-code": tt.errCode, "x-keygate-error-message": resp.GetStatus().GetMessage()}
			if tt.status == 401 {
				want["www-authenticate"] = `Bearer realm="keygate", error="invalid_token"`
			}
			require.Equal(t, want, headerMap(d.GetHeaders()))
			require.Contains(t, d.GetBody(), `{"error":{"code":"`+tt.errCode+`","message":`)
			if tt.errCode == "IP_NOT_ALLOWED" {
				require.Equal(t, ipBody, d.GetBody())
			}
		})
	}

	// The usage log holds one record per check, newest first, with the
	// request's method and path and the HTTP status Envoy answered.
	require.NoError(t, f.st.FlushLogs())
	page, err := f.st.QueryLogs(context.Background(), usagelog.Filter{Limit: 100})
	require.NoError(t, err)
	require.Len(t, page.Items, len(tests))
	for i, tt := range tests {
		r := page.Items[len(tests)-1-i]
		status := 200
		if tt.code != codes.OK {
			status = tt.status
		}
		code := tt.errCode
		switch {
		case tt.report:
			code = engine.AllowReported.Code()
		case code == "":
			code = engine.Allow.Code()
		}
		require.Equal(t, []any{tt.method, tt.logPath, status, code}, []any{r.Method, r.Path, r.Status, r.Code}, "record of %q: %+v", tt.name, r)
	}
}

// TestRawHeaders: with encode_raw_headers Envoy sends header_map instead
// of headers, repeated lines apart.
func TestRawHeaders(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f)
	raw := func(kv ...string) *authv3.CheckRequest {
		r := envoyRequest("203.0.113.9", "GET", "/orders/1", nil)
		h := r.Attributes.Request.Http
		h.Headers = nil
		h.HeaderMap = &corev3.HeaderMap{}
		for i := 0; i < len(kv); i += 2 {
			h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
		}
		return r
	}
	for _, tt := range []struct {
		name string
		req  *authv3.CheckRequest
		want codes.Code
	}{
		{"one line", raw(":path", "/orders/1", "authorization", "Bearer "+f.secret), codes.OK},
		{"same line twice", raw("x-api-key", f.secret, "x-api-key", f.secret), codes.OK},
		{"lines differ", raw("x-api-key", f.secret, "x-api-key", "kg_other"), codes.Unauthenticated},
	} {
		resp, err := c.Check(context.Background(), tt.req)
		require.NoError(t, err)
		require.Equal(t, int32(tt.want), resp.GetStatus().GetCode(), tt.name)
	}
}

// TestConcurrentCheck: many checks at once over one connection, allowed
// and denied; the denials share their prebuilt responses, which gRPC
// marshals concurrently (make test runs this under -race).
func TestConcurrentCheck(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f)
	allowed := envoyRequest("203.0.113.9", "GET", "/orders/1", map[string]string{"authorization": "Bearer " + f.secret})
	denied := envoyRequest("198.51.100.1", "GET", "/orders/1", map[string]string{"authorization": "Bearer " + f.secret})
	errs := make(chan error, 16)
	for g := range 16 {
		go func() {
			req, want := allowed, codes.OK
			if g%2 == 1 {
				req, want = denied, codes.PermissionDenied
			}
			for range 50 {
				resp, err := c.Check(context.Background(), req)
				if err == nil && resp.GetStatus().GetCode() != int32(want) {
					err = fmt.Errorf("status %v, want %v", resp.GetStatus(), want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 16 {
		require.NoError(t, <-errs)
	}
}
