// Package deploy_test runs the proxy configurations shipped in deploy/
// end to end: a real nginx, Caddy and HAProxy from the distribution's
// packages, each listening on loopback in front of an upstream this test
// runs, asking a keygate daemon built from ./cmd/keygate. Clients connect
// from distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) so that each
// proxy sees, and keygate decides on, a different client IP.
//
// The configurations are the shipped files with only their addresses
// substituted (see render). A missing proxy binary fails the test: CI
// installs them (.ci/run), and a skipped proxy test would prove nothing.
package deploy_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/daemontest"
)

// keygateBin is the daemon built once for all tests.
var keygateBin string

func TestMain(m *testing.M) { daemontest.Main(m, "deploy", &keygateBin) }

const adminToken = "deploy-e2e-admin-token-0123456789"

// The denial bodies a client must receive through every proxy.
var (
	bodyIPNotAllowed = `{"error":{"code":"IP_NOT_ALLOWED","message":"Request IP address is not in the API key's allowlist"}}`
	bodyInvalidKey   = `{"error":{"code":"INVALID_KEY","message":"` + engine.DenyInvalidKey.Message() + `"}}`
	bodyScope        = `{"error":{"code":"INSUFFICIENT_SCOPE","message":"` + engine.DenyScope.Message() + `"}}`
)

func TestNginx(t *testing.T)     { testNginx(t, false) }
func TestNginxUnix(t *testing.T) { testNginx(t, true) }

// testNginx runs nginx/keygate.conf, or with unix nginx/keygate-unix.conf
// in front of keygate on a Unix socket.
func testNginx(t *testing.T, unix bool) {
	bin := need(t, "nginx", "nginx")
	h := newHarness(t, unix)
	file, kgLine, kgTo := "nginx/keygate.conf", "server 127.0.0.1:8080;", "server "+h.kg.Addr()+";"
	if unix {
		file, kgLine, kgTo = "nginx/keygate-unix.conf", "server unix:/run/keygate/check.sock;", "server unix:"+h.kg.CheckSocket()+";"
	}
	dir := t.TempDir()
	cert, key, _, pool := certFiles(t)
	h2c, tlsAddr := daemontest.FreeAddr(t), daemontest.FreeAddr(t)
	// Two listeners more for the HTTP/2 cases: h2c (prior knowledge) and
	// TLS with ALPN h2, the shipped server block otherwise as it is.
	conf := render(t, file, map[string]string{
		"listen 80;": "listen " + h.proxyAddr + ";\n    listen " + h2c + " http2;\n    listen " + tlsAddr + " ssl http2;\n" +
			"    ssl_certificate " + cert + ";\n    ssl_certificate_key " + key + ";",
		kgLine:                   kgTo,
		"server 127.0.0.1:9000;": "server " + h.upstreamAddr + ";",
	})
	write(t, filepath.Join(dir, "keygate.conf"), conf)
	// The main context is the test's: the shipped file is what goes into
	// conf.d/, and this is the nginx.conf around it, with every path in the
	// temporary directory.
	// Over the socket (mode 0660, owned by keygate's user and group), the
	// workers connect as keygate's group: as on a real host, where the
	// worker user is put in keygate's group. (Started by root, nginx
	// runs its workers as nobody; otherwise the directive is ignored and
	// they run as keygate's user.)
	user := ""
	if unix {
		g, err := osuser.LookupGroupId(strconv.Itoa(os.Getgid()))
		if err != nil {
			t.Fatal(err)
		}
		user = "user nobody " + g.Name + ";\n"
	}
	main := fmt.Sprintf(`%[2]sworker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log notice;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/keygate.conf;
}
`, dir, user)
	write(t, filepath.Join(dir, "nginx.conf"), main)
	h.startProxy(bin, []string{"-e", filepath.Join(dir, "error.log"), "-p", dir + "/", "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;"},
		nil, filepath.Join(dir, "error.log"))
	h.h2cBase, h.tlsBase, h.pool = "http://"+h2c, "https://"+tlsAddr, pool
	h.run()
}

func TestCaddy(t *testing.T)     { testCaddy(t, false) }
func TestCaddyUnix(t *testing.T) { testCaddy(t, true) }

// testCaddy runs caddy/Caddyfile, or with unix caddy/Caddyfile.unix in
// front of keygate on a Unix socket.
func testCaddy(t *testing.T, unix bool) {
	bin := need(t, "caddy", "caddy")
	h := newHarness(t, unix)
	file, kgLine, kgTo := "caddy/Caddyfile", "forward_auth 127.0.0.1:8080", "forward_auth "+h.kg.Addr()
	if unix {
		file, kgLine, kgTo = "caddy/Caddyfile.unix", "forward_auth unix//run/keygate/check.sock", "forward_auth unix/"+h.kg.CheckSocket()
	}
	h.passesClientRealIP = true
	h.escapesBackslash = true
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(h.proxyAddr)
	cert, key, _, pool := certFiles(t)
	_, tlsPort, _ := net.SplitHostPort(daemontest.FreeAddr(t))
	// h2c beside HTTP/1.1 on the plain-text address, and a TLS address
	// with the test's certificate, for the HTTP/2 cases.
	conf := render(t, file, map[string]string{
		"admin localhost:2019":         "admin off\n\tauto_https disable_redirects\n\tskip_install_trust\n\tservers {\n\t\tprotocols h1 h2 h2c\n\t}",
		"\n:80 {":                      "\nhttp://127.0.0.1:" + port + " {",
		"bind 0.0.0.0":                 "bind 127.0.0.1",
		kgLine:                         kgTo,
		"reverse_proxy 127.0.0.1:9000": "reverse_proxy " + h.upstreamAddr,
	})
	// The TLS site is a copy of the shipped site block.
	site := conf[strings.Index(conf, "\nhttp://127.0.0.1:"+port+" {"):]
	conf += strings.Replace(site, "http://127.0.0.1:"+port+" {", "https://127.0.0.1:"+tlsPort+" {\n\ttls "+cert+" "+key, 1)
	caddyfile := filepath.Join(dir, "Caddyfile")
	write(t, caddyfile, conf)
	env := []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "XDG_DATA_HOME=" + dir}
	h.startProxy(bin, []string{"run", "--config", caddyfile, "--adapter", "caddyfile"}, env, "")
	h.h2cBase, h.tlsBase, h.pool = h.proxyURL, "https://127.0.0.1:"+tlsPort, pool
	h.run()
}

func TestHAProxy(t *testing.T)     { testHAProxy(t, false) }
func TestHAProxyUnix(t *testing.T) { testHAProxy(t, true) }

// testHAProxy runs haproxy/haproxy.cfg, or with unix
// haproxy/haproxy-unix.cfg in front of keygate on a Unix socket.
func testHAProxy(t *testing.T, unix bool) {
	bin := need(t, "haproxy", "haproxy")
	h := newHarness(t, unix)
	file, kgLine, kgTo := "haproxy/haproxy.cfg", "http://127.0.0.1:8080/v1/authz", "http://"+h.kg.Addr()+"/v1/authz"
	if unix {
		file, kgLine, kgTo = "haproxy/haproxy-unix.cfg", "unix@/run/keygate/check.sock", "unix@"+h.kg.CheckSocket()
	}
	dir := t.TempDir()
	lua, err := filepath.Abs(filepath.Join("haproxy", "keygate.lua"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, both, pool := certFiles(t)
	h2c, tlsAddr := daemontest.FreeAddr(t), daemontest.FreeAddr(t)
	conf := render(t, file, map[string]string{
		"/etc/haproxy/keygate.lua": lua,
		// Two binds more for the HTTP/2 cases: h2c (prior knowledge) and
		// TLS with ALPN h2.
		"bind :80":                   "bind " + h.proxyAddr + "\n    bind " + h2c + " proto h2\n    bind " + tlsAddr + " ssl crt " + both + " alpn h2,http/1.1",
		kgLine:                       kgTo,
		"server api1 127.0.0.1:9000": "server api1 " + h.upstreamAddr,
	})
	cfg := filepath.Join(dir, "haproxy.cfg")
	write(t, cfg, conf)
	h.startProxy(bin, []string{"-db", "-f", cfg}, nil, "")
	h.h2cBase, h.tlsBase, h.pool = "http://"+h2c, "https://"+tlsAddr, pool
	h.run()
}

// need returns the path of a proxy binary, failing the test when it is
// missing: CI installs the proxies, so a missing one is a broken setup.
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	// Debian puts nginx and haproxy in /usr/sbin, which a user's PATH may
	// lack.
	if p := filepath.Join("/usr/sbin", name); isExecutable(p) {
		return p
	}
	t.Fatalf("%s not found (%v): install it with apt-get install -y --no-install-recommends %s (.ci/run does)", name, err, pkg)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// render returns the shipped file deploy/<name> with each key of subst
// replaced by its value. Each key must occur exactly once, so the test
// fails when the shipped file changes under it instead of testing
// something else.
func render(t *testing.T, name string, subst map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for from, to := range subst {
		if n := strings.Count(s, from); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want exactly once", name, from, n)
		}
		s = strings.Replace(s, from, to, 1)
	}
	return s
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// harness is one keygate, one upstream and one proxy between them and the
// clients.
type harness struct {
	t            *testing.T
	kg           *daemontest.Daemon
	upstreamAddr string
	upstream     *upstream
	proxyAddr    string
	proxyURL     string

	want []logWant // the checks keygate must have logged

	// passesClientRealIP: the proxy hands a client's own X-Real-IP on to
	// keygate (Caddy's forward_auth copies the client's headers). keygate
	// then sees it disagree with the proxy's X-Forwarded-For and decides
	// on no address at all, so that check is logged without one.
	passesClientRealIP bool
	// escapesBackslash: the proxy sends a raw "\" in the path as "%5C"
	// (Caddy's X-Forwarded-Uri), which keygate then logs.
	escapesBackslash bool

	// h2cBase and tlsBase are where the proxy speaks HTTP/2, with prior
	// knowledge and over TLS (ALPN h2) with a certificate pool trusts.
	h2cBase, tlsBase string
	pool             *x509.CertPool
}

// newHarness starts keygate, on a Unix socket if unix, and the upstream.
func newHarness(t *testing.T, unix bool) *harness {
	h := &harness{t: t, proxyAddr: daemontest.FreeAddr(t)}
	h.proxyURL = "http://" + h.proxyAddr
	h.kg = startKeygate(t, unix)
	h.upstream, h.upstreamAddr = startUpstream(t)
	return h
}

// startKeygate runs keygate on a free loopback port with a temporary data
// directory, trusting 127.0.0.1 (the proxy) and accepting loopback
// allowlist entries; with unix, on the socket check.sock in a temporary
// directory, trusting its peers (--trusted-proxies unix) and nothing else.
// One route rule needs the "admin" scope for /admin.
// Like the proxies it runs in its own process group and is stopped with
// SIGTERM, and SIGKILL after 5 s (see stop).
func startKeygate(t *testing.T, unix bool) *daemontest.Daemon {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "keygate.json")
	write(t, cfg, `{"routes":[{"prefix":"/admin","scope":"admin"}]}`)
	addr, trusted := "", "127.0.0.1/32"
	if unix {
		addr, trusted = "unix:"+filepath.Join(socketDir(t), "check.sock"), "unix"
	}
	return daemontest.Start(t, keygateBin, daemontest.Options{
		Data:         filepath.Join(dir, "data"),
		AdminToken:   adminToken,
		Addr:         addr,
		Args:         []string{"--allow-private-ranges", "--trusted-proxies", trusted, "--config", cfg},
		ProcessGroup: true,
		StartTimeout: 15 * time.Second,
		ReadyPath:    "/readyz",
		ReadyTimeout: 10 * time.Second,
		StopTimeout:  5 * time.Second,
		Graceful:     true,
	})
}

// socketDir returns a new directory for keygate's socket, mode 0750 like
// /run/keygate: a proxy whose workers run as another user (nginx started
// by root runs them as nobody) connect through their group (see
// testNginx).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "keygate-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stop ends a process started by a test, with SIGTERM to its process
// group (nginx's workers among it) and SIGKILL if it lingers, and logs
// its output when the test failed.
func stop(t *testing.T, name string, cmd *exec.Cmd, exited <-chan struct{}, out fmt.Stringer) {
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", name, out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// upstream is the protected API: it answers every request with what it
// received, as JSON.
type upstream struct {
	mu   sync.Mutex
	hits int
}

type echo struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
}

func startUpstream(t *testing.T) (*upstream, string) {
	t.Helper()
	u := &upstream{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits++
		u.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{Method: r.Method, URI: r.RequestURI, Header: r.Header})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return u, l.Addr().String()
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

// startProxy runs a proxy in the foreground in its own process group and
// waits until it accepts connections. logFile, if set, is shown with the
// process output when the test fails.
func (h *harness) startProxy(bin string, args, env []string, logFile string) {
	t := h.t
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	logs := stringer(func() string {
		s := out.String()
		if logFile != "" {
			b, _ := os.ReadFile(logFile)
			s += "\n" + logFile + ":\n" + string(b)
		}
		return s
	})
	t.Cleanup(func() { stop(t, filepath.Base(bin), cmd, exited, logs) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", h.proxyAddr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s:\n%s", bin, h.proxyAddr, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 10 s: %v\n%s", bin, h.proxyAddr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type stringer func() string

func (f stringer) String() string { return f() }

// client returns an HTTP client whose connections come from the loopback
// address ip, so the proxy sees ip as the client.
func client(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:       d.DialContext,
			DisableKeepAlives: true,
		},
	}
}

type reply struct {
	status int
	header http.Header
	body   string
}

// send makes one request through the proxy from client address ip, and
// records the check keygate must log for it.
func (h *harness) send(ip, method, uri string, hdr ...string) reply {
	t := h.t
	t.Helper()
	req, err := http.NewRequest(method, h.proxyURL+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client(ip).Do(req)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", method, uri, ip, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	path, _, _ := strings.Cut(uri, "?")
	h.want = append(h.want, logWant{IP: ip, Method: method, Path: path, Status: resp.StatusCode})
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// allowed asserts that r is the upstream's echo and returns it.
func (h *harness) allowed(what string, r reply) echo {
	t := h.t
	t.Helper()
	var e echo
	if r.status != 200 {
		t.Fatalf("%s: status %d, want 200; body %s", what, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Method == "" {
		t.Fatalf("%s: not the upstream's echo (%v): %s", what, err, r.body)
	}
	return e
}

// denied asserts that r is keygate's denial, body byte for byte.
func (h *harness) denied(what string, r reply, status int, body string) {
	t := h.t
	t.Helper()
	if r.status != status || strings.TrimSpace(r.body) != body {
		t.Errorf("%s: got %d %s\nwant %d %s", what, r.status, r.body, status, body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", what, r.header.Get("WWW-Authenticate"))
	}
}

// identity asserts the identity headers the upstream received: exactly
// one value each (none for an empty one).
func (h *harness) identity(what string, e echo, id, name, scopes string) {
	t := h.t
	t.Helper()
	for _, c := range []struct{ header, want string }{
		{"X-Keygate-Key-Id", id}, {"X-Keygate-Key-Name", name}, {"X-Keygate-Scopes", scopes},
	} {
		got := e.Header.Values(c.header)
		ok := len(got) == 1 && got[0] == c.want || c.want == "" && (len(got) == 0 || len(got) == 1 && got[0] == "")
		if !ok {
			t.Errorf("%s: upstream got %s %q, want %q", what, c.header, got, c.want)
		}
	}
}

// admin calls keygate's management API and decodes the answer into out.
func (h *harness) admin(method, path string, body any, out any) {
	t := h.t
	t.Helper()
	r, err := h.kg.Admin(method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, r.Body)
		}
	}
}

type key struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

func (h *harness) createKey(name string, scopes []string, cidrs ...string) key {
	entries := []map[string]string{}
	for _, c := range cidrs {
		entries = append(entries, map[string]string{"cidr": c, "label": "test"})
	}
	var k key
	h.admin("POST", "/v1/keys", map[string]any{"name": name, "scopes": scopes, "allowlist": entries}, &k)
	if k.Secret == "" {
		h.t.Fatalf("created key %s has no secret", name)
	}
	return k
}

// run walks one proxy through every case. Each step depends on the keys
// and allowlists the steps before it left, so it is one sequence, not
// subtests.
func (h *harness) run() {
	t := h.t
	const (
		ipA, ipB, ipC = "127.0.0.2", "127.0.0.3", "127.0.0.4"
		forged        = "key_forged0000000"
	)
	alice := h.createKey("alice", []string{"orders:read"}, ipA)
	bob := h.createKey("bob", nil) // no scopes, no allowlist: any address

	// A valid key from an allowed address reaches the upstream with the
	// identity headers set, by Authorization and by X-API-Key.
	e := h.allowed("alice from allowed IP", h.send(ipA, "GET", "/orders/1?page=2", "Authorization", "Bearer "+alice.Secret))
	if e.Method != "GET" || e.URI != "/orders/1?page=2" {
		t.Errorf("upstream got %s %s, want GET /orders/1?page=2", e.Method, e.URI)
	}
	h.identity("alice from allowed IP", e, alice.ID, "alice", "orders:read")
	e = h.allowed("alice with X-API-Key", h.send(ipA, "POST", "/orders", "X-API-Key", alice.Secret))
	h.identity("alice with X-API-Key", e, alice.ID, "alice", "orders:read")

	// Invalid or missing key: 401 with keygate's JSON body.
	h.denied("unknown key", h.send(ipA, "GET", "/orders/1", "Authorization", "Bearer kg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401, bodyInvalidKey)
	h.denied("no key", h.send(ipB, "GET", "/orders/1"), 401, bodyInvalidKey)

	// A valid key from an address outside its allowlist: 403, exactly
	// the contract's body.
	h.denied("alice from blocked IP", h.send(ipB, "GET", "/orders/1", "Authorization", "Bearer "+alice.Secret), 403, bodyIPNotAllowed)

	// A client cannot choose the address keygate decides on.
	h.denied("alice from blocked IP, forged X-Forwarded-For", h.send(ipB, "GET", "/orders/1",
		"Authorization", "Bearer "+alice.Secret,
		"X-Forwarded-For", ipA, "Forwarded", "for="+ipA), 403, bodyIPNotAllowed)
	h.denied("alice from blocked IP, forged X-Real-IP and X-Forwarded-For", h.send(ipB, "GET", "/orders/1",
		"Authorization", "Bearer "+alice.Secret,
		"X-Forwarded-For", ipA, "X-Real-IP", ipA, "Forwarded", "for="+ipA), 403, bodyIPNotAllowed)
	if h.passesClientRealIP {
		h.want[len(h.want)-1].IP = ""
	}
	h.denied("alice from blocked IP, forged X-Forwarded-For list", h.send(ipB, "GET", "/orders/1",
		"Authorization", "Bearer "+alice.Secret,
		"X-Forwarded-For", ipA+", 127.0.0.1", "X-Forwarded-For", "127.0.0.1"), 403, bodyIPNotAllowed)

	// Nor the identity the upstream sees: keygate's values replace forged
	// ones, also when keygate's value is empty (bob has no scopes).
	forgery := []string{"X-Keygate-Key-Id", forged, "X-Keygate-Key-Name", "root", "X-Keygate-Scopes", "admin"}
	e = h.allowed("bob with forged identity", h.send(ipC, "GET", "/orders/1", append([]string{"Authorization", "Bearer " + bob.Secret}, forgery...)...))
	h.identity("bob with forged identity", e, bob.ID, "bob", "")
	e = h.allowed("alice with forged identity", h.send(ipA, "GET", "/orders/1", append([]string{"X-API-Key", alice.Secret}, forgery...)...))
	h.identity("alice with forged identity", e, alice.ID, "alice", "orders:read")

	// Nor the request keygate's route rules see: /admin needs "admin".
	h.denied("alice on /admin, forged original URI", h.send(ipA, "GET", "/admin/users",
		"Authorization", "Bearer "+alice.Secret,
		"X-Forwarded-Uri", "/orders/1", "X-Original-URI", "/orders/1",
		"X-Forwarded-Method", "HEAD", "X-Original-Method", "HEAD"), 403, bodyScope)

	h.edges(ipA, alice, bob, h.h2cBase, h.tlsBase, h.pool)

	// Management changes are honoured on the very next request.
	before := h.upstream.count()
	h.admin("PUT", "/v1/keys/"+alice.ID+"/allowlist", map[string]any{"entries": []map[string]string{{"cidr": ipB}}}, nil)
	h.allowed("alice from newly allowed IP", h.send(ipB, "GET", "/orders/2", "Authorization", "Bearer "+alice.Secret))
	h.denied("alice from formerly allowed IP", h.send(ipA, "GET", "/orders/2", "Authorization", "Bearer "+alice.Secret), 403, bodyIPNotAllowed)
	h.admin("DELETE", "/v1/keys/"+bob.ID, nil, nil)
	h.denied("bob after revocation", h.send(ipC, "GET", "/orders/1", "Authorization", "Bearer "+bob.Secret), 401, bodyInvalidKey)
	if got := h.upstream.count() - before; got != 1 {
		t.Errorf("upstream got %d requests after the allowlist change, want 1: denials must not reach it", got)
	}

	h.checkLogs()

	// keygate down: the request is refused, never let through.
	h.kg.Stop()
	before = h.upstream.count()
	if r := h.send(ipA, "GET", "/orders/3", "Authorization", "Bearer "+alice.Secret); r.status < 500 {
		t.Errorf("keygate down: got %d %s, want a 5xx", r.status, r.body)
	}
	if h.upstream.count() != before {
		t.Errorf("keygate down: the request reached the upstream")
	}
}

// logWant is what keygate must have logged for one request.
type logWant struct {
	IP     string `json:"ip"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
}

func (l logWant) String() string {
	return l.IP + " " + l.Method + " " + l.Path + " " + strconv.Itoa(l.Status)
}

// checkLogs asserts that keygate logged every request sent through the
// proxy, once, with the client's real address, and nothing else.
func (h *harness) checkLogs() {
	t := h.t
	want := make([]string, len(h.want))
	for i, w := range h.want {
		want[i] = w.String()
	}
	sort.Strings(want)
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		var page struct {
			Items []logWant `json:"items"`
		}
		h.admin("GET", "/v1/logs?limit=1000", nil, &page)
		got = got[:0]
		for _, it := range page.Items {
			got = append(got, it.String())
		}
		sort.Strings(got)
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("usage log does not match the requests sent\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestUnixVariantsMatch: each Unix-socket configuration is its TCP one
// with only the opening comment and keygate's address line changed, so the
// two cannot drift apart (both are run end to end as well).
func TestUnixVariantsMatch(t *testing.T) {
	for _, v := range []struct{ tcp, unix, tcpLine, unixLine string }{
		{"nginx/keygate.conf", "nginx/keygate-unix.conf",
			"    server 127.0.0.1:8080;    # EDIT: keygate's --addr",
			"    server unix:/run/keygate/check.sock;    # EDIT: keygate's --addr, unix:PATH"},
		{"caddy/Caddyfile", "caddy/Caddyfile.unix",
			"\t\tforward_auth 127.0.0.1:8080 { # EDIT: keygate's --addr",
			"\t\tforward_auth unix//run/keygate/check.sock { # EDIT: keygate's --addr, unix/PATH"},
		{"haproxy/haproxy.cfg", "haproxy/haproxy-unix.cfg",
			"    http-request lua.keygate http://127.0.0.1:8080/v1/authz   # EDIT: keygate's --addr",
			"    http-request lua.keygate unix@/run/keygate/check.sock   # EDIT: keygate's --addr, unix@PATH"},
	} {
		tcp := withoutHeader(t, v.tcp)
		unix := withoutHeader(t, v.unix)
		if n := strings.Count(unix, "\n"+v.unixLine+"\n"); n != 1 {
			t.Errorf("%s: keygate's line %q occurs %d times, want once", v.unix, v.unixLine, n)
			continue
		}
		if got := strings.Replace(unix, "\n"+v.unixLine+"\n", "\n"+v.tcpLine+"\n", 1); got != tcp {
			t.Errorf("%s differs from %s beyond keygate's address and the opening comment", v.unix, v.tcp)
		}
	}
}

// withoutHeader returns deploy/<name> without its opening comment lines.
func withoutHeader(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for strings.HasPrefix(s, "#") {
		_, s, _ = strings.Cut(s, "\n")
	}
	return s
}
