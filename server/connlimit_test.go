package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMaxConns: beyond MaxConns open connections a new one gets 503 with
// the JSON error body, is counted, and once a slot frees up a new
// connection is served again.
func TestMaxConns(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConns = 3 })
	addr := strings.TrimPrefix(ts.checkURL, "http://")
	get := func(c net.Conn) (*http.Response, string) {
		t.Helper()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		defer c.Close()
		if res, _ := get(c); res.StatusCode != 200 {
			t.Fatalf("within the limit: %d", res.StatusCode)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", addr)
	must(t, err)
	res, body := get(c)
	c.Close()
	if res.StatusCode != 503 || res.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(body, `{"error":{"code":"UNAVAILABLE","message":"too many open connections`) {
		t.Fatalf("over the limit: %d %v %q", res.StatusCode, res.Header, body)
	}
	held[0].Close()
	time.Sleep(50 * time.Millisecond)
	c, err = net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	if res, _ := get(c); res.StatusCode != 200 {
		t.Fatalf("after a slot freed up: %d", res.StatusCode)
	}
	// The counter, read on a held connection (a new one would be over the limit).
	fmt.Fprintf(held[1], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	mres, err := http.ReadResponse(bufio.NewReader(held[1]), nil)
	must(t, err)
	mb, _ := io.ReadAll(mres.Body)
	if !strings.Contains(string(mb), "keygate_http_connections_rejected_total 1\n") {
		t.Errorf("rejections not counted:\n%s", mb)
	}
	if err := (Config{AdminToken: testToken, MaxConns: -1}).Validate(); err == nil {
		t.Error("negative MaxConns accepted")
	}
}

// TestRefusedRequestIsAnswered: a request refused before it was read in
// full (413, 431) gets its answer, not a connection reset, even while the
// client is still sending it.
func TestRefusedRequestIsAnswered(t *testing.T) {
	ts := startServer(t, nil)
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	body := strings.Repeat("x", 4<<20)
	for i := range 40 {
		req, _ := http.NewRequest("POST", ts.checkURL+"/v1/check", strings.NewReader(body))
		want := 413
		if i%2 == 1 {
			req, _ = http.NewRequest("GET", ts.checkURL+"/v1/authz", nil)
			for h := range 64 {
				req.Header.Set(fmt.Sprintf("X-Big-%d", h), body[:4<<10])
			}
			want = 431
		}
		res, err := cl.Do(req)
		if err != nil {
			t.Fatalf("attempt %d: %v, want %d", i, err, want)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("attempt %d: %d, want %d", i, res.StatusCode, want)
		}
	}
}
