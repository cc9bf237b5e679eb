package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/daemontest"
)

// TestUnixSocketDaemon runs the binary with both listeners on Unix
// sockets: the sockets' mode, management and checks through them, the
// CLI's --server unix:, a second daemon on a live socket refused as "in
// use", and a restart after SIGKILL over the stale socket files, with
// --socket-mode from the environment.
func TestUnixSocketDaemon(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	check, admin := filepath.Join(dir, "check.sock"), filepath.Join(dir, "admin.sock")
	const token = "unix-socket-admin-token-0123"
	opts := daemontest.Options{Data: data, AdminToken: token, Addr: "unix:" + check, ReadyPath: "/readyz",
		Args: []string{"--admin-addr", "unix:" + admin, "--trusted-proxies", "unix"}}
	d := daemontest.Start(t, binary, opts)
	if d.CheckSocket() != check || d.AdminSocket() != admin || d.URL() != "http://localhost" {
		t.Fatalf("banner: check %q admin %q url %q:\n%s", d.CheckSocket(), d.AdminSocket(), d.URL(), d.Output())
	}
	wantMode := func(mode os.FileMode) {
		t.Helper()
		for _, p := range []string{check, admin} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != mode {
				t.Errorf("%s: mode %v, want a socket with %04o", p, fi.Mode(), mode)
			}
		}
	}
	wantMode(0o660)

	r, err := d.Admin("POST", "/v1/keys", map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	if err != nil || r.Status != 201 {
		t.Fatalf("create over the admin socket: %v %d %s", err, r.Status, r.Body)
	}
	var k struct{ ID, Secret string }
	if err := json.Unmarshal(r.Body, &k); err != nil {
		t.Fatal(err)
	}
	decide := func(d *daemontest.Daemon) {
		t.Helper()
		c := d.Client()
		defer c.CloseIdleConnections()
		for _, tt := range []struct {
			method, path string
			body         any
			hdr          []string
			want         int
		}{
			{"POST", "/v1/check", map[string]string{"key": k.Secret, "ip": "203.0.113.5"}, nil, 200},
			{"POST", "/v1/check", map[string]string{"key": k.Secret, "ip": "203.0.113.6"}, nil, 403},
			{"GET", "/v1/authz", nil, []string{"X-API-Key", k.Secret, "X-Forwarded-For", "203.0.113.5"}, 200},
			{"GET", "/v1/authz", nil, []string{"X-API-Key", k.Secret, "X-Forwarded-For", "203.0.113.6"}, 403},
			{"GET", "/v1/authz", nil, []string{"X-API-Key", k.Secret}, 403},
			{"GET", "/v1/keys", nil, []string{"Authorization", "Bearer " + token}, 404}, // management is on the admin socket
		} {
			r, err := daemontest.Request(c, tt.method, d.URL()+tt.path, "", tt.body, tt.hdr...)
			if err != nil || r.Status != tt.want {
				t.Errorf("%s %s %v: %v %d %s, want %d", tt.method, tt.path, tt.hdr, err, r.Status, r.Body, tt.want)
			}
		}
	}
	decide(d)

	code, out, errOut := runKeygate(t, nil, "keys", "list", "--server", "unix:"+admin, "--admin-token", token, "--json")
	if code != 0 || !strings.Contains(out, k.ID) {
		t.Errorf("keys list --server unix:: exit %d, stdout %s, stderr %s", code, out, errOut)
	}

	// A second daemon on the live socket is refused, and the socket
	// still serves.
	code, _, errOut = runKeygate(t, nil, "serve", "--data", filepath.Join(dir, "data2"), "--admin-token", token, "--addr", "unix:"+check)
	if code == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("second daemon on a live socket: exit %d, stderr %s; want an \"in use\" error", code, errOut)
	}
	decide(d)

	// SIGKILL leaves both socket files; the next start replaces them.
	d.Kill()
	for _, p := range []string{check, admin} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("after SIGKILL: %v", err)
		}
	}
	opts.Env = []string{"KEYGATE_SOCKET_MODE=0600"}
	opts.Graceful = true
	d = daemontest.Start(t, binary, opts)
	wantMode(0o600)
	decide(d)
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.Output())
	}
	for _, p := range []string{check, admin} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still exists after a clean stop", p)
		}
	}
}
