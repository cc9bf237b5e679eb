package reliability_test

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dial opens a raw connection to d's listener.
func dial(t testing.TB, d *daemon) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(d.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// timedCheck returns the status and latency of one check on a new
// connection.
func timedCheck(d *daemon, secret string) (int, time.Duration) {
	t0 := time.Now()
	s, err := check(d, secret, "203.0.113.5")
	if err != nil {
		return 0, time.Since(t0)
	}
	return s, time.Since(t0)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestSlowloris: 200 connections that send a header a byte at a time do
// not block other clients or grow memory, and are cut off by the read
// timeout (10 s).
func TestSlowloris(t *testing.T) {
	d := start(t, t.TempDir())
	k := createKey(t, d, "slow", "203.0.113.5")
	rss0 := rssBytes(d.Pid())
	const n = 200
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dial(t, d)
		fmt.Fprintf(conns[i], "POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
	}
	began := time.Now()
	var lat []time.Duration
	// Trickle for 3 s while a normal client checks.
	for time.Since(began) < 3*time.Second {
		for _, c := range conns {
			c.Write([]byte("a"))
		}
		for range 20 {
			s, l := timedCheck(d, k.secret)
			if s != 200 {
				t.Fatalf("check during slowloris: %d", s)
			}
			lat = append(lat, l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rss1 := rssBytes(d.Pid())
	if rss1-rss0 > 32<<20 {
		t.Errorf("RSS grew by %d MiB under %d slow connections", (rss1-rss0)>>20, n)
	}
	// The read timeout closes them all.
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(began.Add(13 * time.Second))
		b, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && strings.Contains(b, "408") || err != nil && !isTimeout(err) {
			closed++
		}
		c.Close()
	}
	if closed != n {
		t.Errorf("%d of %d slow connections cut off by the read timeout", closed, n)
	}
	t.Logf("slowloris: %d connections trickling a header; %d other checks p50 %v p99 %v max %v; RSS %d -> %d MiB; %d cut off after %v",
		n, len(lat), percentile(lat, .5), percentile(lat, .99), percentile(lat, 1), rss0>>20, rss1>>20, closed, time.Since(began).Round(100*time.Millisecond))
	if p := percentile(lat, .99); p > 200*time.Millisecond {
		t.Errorf("p99 check latency %v during slowloris", p)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestIdleConnections: 2000 idle keep-alive connections stay bounded in
// memory and do not stop new clients.
func TestIdleConnections(t *testing.T) {
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	n := 2000
	if int(rl.Cur) < 2*n+200 {
		n = (int(rl.Cur) - 200) / 2
		t.Logf("RLIMIT_NOFILE %d: using %d connections", rl.Cur, n)
	}
	d := start(t, t.TempDir())
	k := createKey(t, d, "idle", "203.0.113.5")
	rss0, fd0 := rssBytes(d.Pid()), openFDs(d.Pid())
	conns := make([]net.Conn, n)
	req := fmt.Sprintf("POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(`{"key":"`+k.secret+`","ip":"203.0.113.5"}`), `{"key":"`+k.secret+`","ip":"203.0.113.5"}`)
	for i := range conns {
		conns[i] = dial(t, d)
		defer conns[i].Close()
		conns[i].Write([]byte(req))
		conns[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conns[i]).ReadString('\n')
		if err != nil || !strings.Contains(line, "200") {
			t.Fatalf("conn %d: %q %v", i, line, err)
		}
	}
	rss1, fd1 := rssBytes(d.Pid()), openFDs(d.Pid())
	var lat []time.Duration
	for range 200 {
		s, l := timedCheck(d, k.secret)
		if s != 200 {
			t.Fatalf("new client with %d idle connections: %d", n, s)
		}
		lat = append(lat, l)
	}
	perConn := (rss1 - rss0) / int64(n)
	t.Logf("idle keep-alive: %d connections; fds %d -> %d; RSS %d -> %d MiB (%d KiB per connection); new clients p50 %v p99 %v",
		n, fd0, fd1, rss0>>20, rss1>>20, perConn>>10, percentile(lat, .5), percentile(lat, .99))
	if perConn > 64<<10 {
		t.Errorf("%d KiB of RSS per idle connection", perConn>>10)
	}
}

// TestHostileRequests: malformed and oversized requests are answered
// quickly with the contract's 4xx, and the daemon stays up.
func TestHostileRequests(t *testing.T) {
	d := start(t, t.TempDir(), "--trusted-proxies", "127.0.0.1")
	k := createKey(t, d, "hostile", "203.0.113.5")
	big := func(n int) string { return strings.Repeat("A", n) }
	xff := func(hops int) string {
		var b strings.Builder
		for i := range hops {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "1.1.%d.%d", i/250, 1+i%250)
		}
		return b.String()
	}
	// Split 1,000 hops over header lines that each fit the header limit.
	var xffLines []string
	for i := 0; i < 1000; i += 100 {
		xffLines = append(xffLines, "X-Forwarded-For", xff(100))
	}
	cases := []struct {
		name         string
		method, path string
		token        string
		body         string
		hdr          []string
		want         []int
	}{
		{"header 16 KiB", "GET", "/v1/authz", "", "", []string{"X-Big", big(16 << 10)}, []int{431}},
		{"header 8 KiB in many lines", "GET", "/v1/authz", "", "", manyHeaders(200, 50), []int{431}},
		{"body 128 KiB", "POST", "/v1/check", "", big(128 << 10), nil, []int{413}},
		{"body 128 KiB to management", "POST", "/v1/keys", adminToken, big(128 << 10), nil, []int{413}},
		{"malformed JSON", "POST", "/v1/check", "", `{"key":"` + k.secret + `","ip":`, nil, []int{400}},
		{"JSON array", "POST", "/v1/check", "", `[1,2,3]`, nil, []int{400}},
		{"deep nesting", "POST", "/v1/keys", adminToken, strings.Repeat("[", 50000), nil, []int{400}},
		{"form body", "POST", "/v1/check", "", "key=" + k.secret + "&ip=203.0.113.5", []string{"Content-Type", "application/x-www-form-urlencoded"}, []int{400}},
		{"multipart body", "POST", "/v1/keys", adminToken, "--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nk\r\n--x--\r\n", []string{"Content-Type", "multipart/form-data; boundary=x"}, []int{400}},
		{"key 60 KiB", "POST", "/v1/check", "", `{"key":"kg_` + big(60<<10) + `","ip":"203.0.113.5"}`, nil, []int{400, 401}},
		{"scope 60 KiB", "POST", "/v1/check", "", `{"key":"` + k.secret + `","ip":"203.0.113.5","scope":"` + big(60<<10) + `"}`, nil, []int{400, 403}},
		{"ip 60 KiB", "POST", "/v1/check", "", `{"key":"` + k.secret + `","ip":"` + big(60<<10) + `"}`, nil, []int{400}},
		{"key name 60 KiB", "POST", "/v1/keys", adminToken, `{"name":"` + big(60<<10) + `"}`, nil, []int{422}},
		{"20k scopes", "POST", "/v1/keys", adminToken, `{"name":"x","scopes":[` + strings.TrimSuffix(strings.Repeat(`"a",`, 15000), ",") + `]}`, nil, []int{422}},
		{"1000 allowlist entries", "PUT", "/v1/keys/" + k.id + "/allowlist", adminToken, `{"entries":[` + strings.TrimSuffix(strings.Repeat(`{"cidr":"203.0.113.9"},`, 1000), ",") + `]}`, nil, []int{422}},
		{"bearer 7 KiB", "GET", "/v1/authz", "", "", []string{"Authorization", "Bearer kg_" + big(7<<10)}, []int{401}},
		{"XFF 1,000 hops", "GET", "/v1/authz", "", "", append([]string{"X-API-Key", k.secret}, xffLines...), []int{403, 431}},
		{"XFF 1,000 hops in one line", "GET", "/v1/authz", "", "", []string{"X-API-Key", k.secret, "X-Forwarded-For", strings.TrimSuffix(strings.Repeat("1.1.1.1,", 1000), ",")}, []int{403, 431}},
		{"XFF 1,000 hops, one garbage", "GET", "/v1/authz", "", "", []string{"X-API-Key", k.secret, "X-Forwarded-For", "203.0.113.5," + strings.Repeat("x,", 999) + "127.0.0.1"}, []int{403}},
		{"wrong admin token", "GET", "/v1/keys", "wrong-token-0123456789abcdef", "", nil, []int{401}},
		{"API key as admin token", "GET", "/v1/keys", k.secret, "", nil, []int{401}},
		{"path traversal", "GET", "/../../etc/passwd", "", "", nil, []int{200, 400, 404}},
		{"bad method", "BREW", "/v1/check", "", "", nil, []int{405}},
	}
	for _, c := range cases {
		t0 := time.Now()
		r, err := do(c.method, d.url+c.path, c.token, c.body, c.hdr...)
		el := time.Since(t0)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Contains(c.want, r.status) {
			t.Errorf("%s: %d %.200s, want %v", c.name, r.status, r.body, c.want)
		}
		if el > 500*time.Millisecond {
			t.Errorf("%s: answered in %v", c.name, el)
		}
		if r.status >= 400 && r.status != 431 && !strings.HasPrefix(string(r.body), `{"error":{"code":"`) {
			t.Errorf("%s: %d without the JSON error body: %.200s", c.name, r.status, r.body)
		}
		t.Logf("%-32s %d in %v", c.name, r.status, el.Round(10*time.Microsecond))
	}
	if s, _ := check(d, k.secret, "203.0.113.5"); s != 200 {
		t.Errorf("after the hostile requests: %d", s)
	}
	if m := metrics(t, d); m["keygate_http_requests_total{code=\"500\",handler=\"check\"}"] > 0 || m["keygate_http_panics_total"] > 0 {
		t.Errorf("5xx or panics: %v", m)
	}
}

// manyHeaders returns n header lines of size bytes each.
func manyHeaders(n, size int) []string {
	var h []string
	for i := range n {
		h = append(h, fmt.Sprintf("X-H%d", i), strings.Repeat("v", size))
	}
	return h
}
