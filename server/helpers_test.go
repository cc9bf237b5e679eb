package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/daemontest"
)

const testToken = "test-admin-token-0123456789"

// testServer is a server started on loopback ports for one test.
type testServer struct {
	*Server
	st       *fakeStore
	checkURL string
	adminURL string
	cancel   context.CancelFunc
	done     chan error
}

// startServer starts a server over a fake store. mod may adjust the
// configuration; an empty AdminAddr in the result means one listener.
func startServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	cfg := Config{AdminToken: testToken, Addr: "127.0.0.1:0", PollInterval: 50 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	st := newFakeStore()
	s, err := New(context.Background(), cfg, st)
	must(t, err)
	var ls Listeners
	ls.Check, err = net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ts := &testServer{Server: s, st: st, checkURL: "http://" + ls.Check.Addr().String()}
	ts.adminURL = ts.checkURL
	if cfg.AdminAddr != "" {
		ls.Admin, err = net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		ts.adminURL = "http://" + ls.Admin.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.done = make(chan error, 1)
	go func() { ts.done <- s.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return m
}

func (r response) errCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

var client = &http.Client{Timeout: 10 * time.Second}

// do sends one request; see daemontest.Request.
func do(t *testing.T, method, url string, body any, hdr ...string) response {
	t.Helper()
	r, err := daemontest.Request(client, method, url, "", body, hdr...)
	must(t, err)
	return response{status: r.Status, header: r.Header, body: r.Body}
}

// admin sends an authenticated management request.
func (ts *testServer) admin(t *testing.T, method, path string, body any) response {
	t.Helper()
	return do(t, method, ts.adminURL+path, body, "Authorization", "Bearer "+testToken)
}

// createKey creates a key through the API and returns its id and secret.
func (ts *testServer) createKey(t *testing.T, body map[string]any) (id, secret string) {
	t.Helper()
	r := ts.admin(t, "POST", "/v1/keys", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d, want 201: %s", r.status, r.body)
	}
	m := r.json(t)
	return m["id"].(string), m["secret"].(string)
}

// check calls POST /v1/check.
func (ts *testServer) check(t *testing.T, key, ip, scope string) response {
	t.Helper()
	return do(t, "POST", ts.checkURL+"/v1/check", map[string]string{"key": key, "ip": ip, "scope": scope, "method": "GET", "path": "/orders"})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantStatus fails the test unless r has status want.
func wantStatus(t *testing.T, r response, want int, what string) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, want, r.body)
	}
}

// testClock is a Config.Now that runs with the wall clock, plus an offset
// the test moves forward instead of sleeping. Safe for concurrent use.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock d forward.
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
