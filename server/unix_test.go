package server

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/daemontest"
)

// unixClient is an HTTP client whose every connection goes to the socket
// at path, whatever the URL's host.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// startUnixServer starts a server whose check listener is a Unix socket,
// opened by Listen, and returns it with the socket's path.
func startUnixServer(t *testing.T, mod func(*Config)) (*Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "check.sock")
	cfg := Config{AdminToken: testToken, Addr: "unix:" + sock, PollInterval: 50 * time.Millisecond, AllowPrivateRanges: true}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(context.Background(), cfg, newFakeStore())
	must(t, err)
	ls, err := s.Listen()
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Lstat(sock); err == nil {
			t.Errorf("%s still exists after shutdown", sock)
		}
	})
	return s, sock
}

func unixDo(t *testing.T, sock, method, path string, body any, hdr ...string) response {
	t.Helper()
	c := unixClient(sock)
	defer c.CloseIdleConnections()
	r, err := doWith(c, method, "http://keygate"+path, body, hdr...)
	must(t, err)
	return r
}

// TestUnixSocketClientIP: over a socket, /v1/check takes the ip from the
// body; forward-auth has no peer address, so it believes the forwarded
// headers only when trusted-proxies names unix, and else fails closed for
// a key with an allowlist.
func TestUnixSocketClientIP(t *testing.T) {
	for _, trustUnix := range []bool{false, true} {
		_, sock := startUnixServer(t, func(c *Config) {
			if trustUnix {
				c.TrustedProxies = []string{"unix"}
			}
		})
		auth := []string{"Authorization", "Bearer " + testToken}
		r := unixDo(t, sock, "POST", "/v1/keys", map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}}, auth...)
		wantStatus(t, r, 201, "create over the socket")
		secret := r.json(t)["secret"].(string)
		r = unixDo(t, sock, "POST", "/v1/keys", map[string]any{"name": "open"}, auth...)
		openSecret := r.json(t)["secret"].(string)

		check := func(ip string) response {
			return unixDo(t, sock, "POST", "/v1/check", map[string]string{"key": secret, "ip": ip})
		}
		wantStatus(t, check("203.0.113.5"), 200, "/v1/check, allowed ip in the body")
		wantStatus(t, check("203.0.113.6"), 403, "/v1/check, other ip in the body")

		authz := func(key string, hdr ...string) response {
			return unixDo(t, sock, "GET", "/v1/authz", nil, append([]string{"Authorization", "Bearer " + key}, hdr...)...)
		}
		xff, real := 403, 403
		if trustUnix {
			xff, real = 200, 200
		}
		wantStatus(t, authz(secret, "X-Forwarded-For", "203.0.113.5"), xff, "authz, X-Forwarded-For")
		wantStatus(t, authz(secret, "X-Real-IP", "203.0.113.5"), real, "authz, X-Real-IP")
		wantStatus(t, authz(secret), 403, "authz, no forwarded header: no address")
		wantStatus(t, authz(secret, "X-Forwarded-For", "203.0.113.6"), 403, "authz, other client")
		wantStatus(t, authz(openSecret), 200, "authz, key without allowlist")
	}
}

func TestUnixSocketMode(t *testing.T) {
	for _, tt := range []struct {
		mode, want os.FileMode
	}{{0, 0o660}, {0o600, 0o600}, {0o666, 0o666}} {
		_, sock := startUnixServer(t, func(c *Config) { c.SocketMode = tt.mode })
		fi, err := os.Lstat(sock)
		must(t, err)
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tt.want {
			t.Errorf("SocketMode %04o: socket mode %v, want %04o", tt.mode, fi.Mode(), tt.want)
		}
	}
}

// TestUnixSocketStale: a socket file nobody accepts on (a killed daemon's)
// is replaced; a live one, or a file that is not a socket, is an error and
// is left alone.
func TestUnixSocketStale(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "check.sock")
	listenOn := func() error {
		s, err := New(context.Background(), Config{AdminToken: testToken, Addr: "unix:" + sock}, newFakeStore())
		must(t, err)
		ls, err := s.Listen()
		if err == nil {
			ls.Check.Close()
		}
		return err
	}

	// Stale: the listener is gone and its file stays, as after SIGKILL.
	ln, err := net.Listen("unix", sock)
	must(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the stale socket file is not there: %v", err)
	}
	if err := listenOn(); err != nil {
		t.Fatalf("listening over a stale socket: %v", err)
	}

	// Live: another process accepts on it.
	ln, err = net.Listen("unix", sock)
	must(t, err)
	defer ln.Close()
	err = listenOn()
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("listening on a live socket: %v, want an \"in use\" error", err)
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Fatalf("the live socket was disturbed: %v", err)
	} else {
		c.Close()
	}

	// Not a socket.
	file := filepath.Join(dir, "file.sock")
	must(t, os.WriteFile(file, []byte("keep"), 0o600))
	s, err := New(context.Background(), Config{AdminToken: testToken, Addr: "127.0.0.1:0", AdminAddr: "unix:" + file}, newFakeStore())
	must(t, err)
	if _, err := s.Listen(); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listening on a regular file: %v, want \"not a socket\"", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Fatalf("the regular file was touched: %q, %v", b, err)
	}
}

func TestUnixSocketConfig(t *testing.T) {
	long := "unix:/" + strings.Repeat("a", 120)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "unix:"}, `addr "unix:": a Unix socket address needs a path`},
		{Config{Addr: long}, "longer than the 107"},
		{Config{Addr: "unix:@abstract"}, "abstract sockets"},
		{Config{AdminAddr: "unix:/run/k.sock", Addr: "unix:/run/k.sock"}, "is the same as addr"},
		{Config{Addr: "unix:/run/k.sock", SocketMode: 0o1660}, "socket-mode 1660: want permission bits only"},
		{Config{Addr: "localhost"}, "want host:port, e.g. 127.0.0.1:8080, or unix:/path/to.sock"},
		{Config{TrustedProxies: []string{"unix:"}}, `"unix:" is not an IP address, a CIDR range or "unix"`},
	} {
		tt.cfg.AdminToken = testToken
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
	ok := Config{AdminToken: testToken, Addr: "unix:/run/keygate/check.sock", AdminAddr: "unix:/run/keygate/admin.sock", SocketMode: 0o600, TrustedProxies: []string{"unix", "10.0.0.1"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid socket configuration refused: %v", err)
	}
}

// doWith is do with client c, returning the error.
func doWith(c *http.Client, method, url string, body any, hdr ...string) (response, error) {
	r, err := daemontest.Request(c, method, url, "", body, hdr...)
	return response{status: r.Status, header: r.Header, body: r.Body}, err
}
