package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/daemontest"
)

// TestForwardAuthEdges runs the forward-auth path tricks against the real
// binary, one listener serving everything (the worst case): raw request
// targets that start with /v1/authz and normalise to another endpoint
// never reach it, with the admin token as the bearer too (before the fix
// /v1/authz/../../healthz answered 200 with no key and
// /v1/authz/../../v1/keys listed the keys); and a real-IP header naming a
// trusted load balancer does not conflict with the X-Forwarded-For walk
// (before the fix: 403 IP_NOT_ALLOWED with no address logged).
func TestForwardAuthEdges(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "keygate.json")
	if err := os.WriteFile(cfg, []byte(`{"routes":[{"prefix":"/","scope":"base"},{"prefix":"/public","scope":""}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startKeygate(t, filepath.Join(dir, "data"), nil, "--config", cfg, "--trusted-proxies", "127.0.0.1,127.0.0.9")
	addr := strings.TrimPrefix(d.url, "http://")
	r := call(t, "POST", d.admin+"/v1/keys", d.token, map[string]any{"name": "k", "scopes": []string{"base"},
		"allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var k struct{ ID, Secret string }
	if err := json.Unmarshal(r.body, &k); err != nil {
		t.Fatal(err)
	}

	endpoints := []string{"healthz", "readyz", "metrics", "v1/check", "v1/keys", "v1/keys/" + k.ID, "v1/logs", "v1/logs/export.csv", "", "index.html"}
	for _, ep := range endpoints {
		for _, target := range []string{
			"/v1/authz/../../" + ep, "/v1/authz/..%2F..%2F" + ep, "/v1/authz/%2e%2e/%2e%2e/" + ep, "/v1/authz/./../../../" + ep,
		} {
			for _, auth := range []string{"", "Authorization: Bearer " + d.token + "\r\n", "X-API-Key: " + k.Secret + "\r\n"} {
				res, err := daemontest.Raw(addr, "GET "+target+" HTTP/1.1\r\nHost: "+addr+"\r\nX-Forwarded-For: 203.0.113.5\r\n"+auth+"Connection: close\r\n\r\n")
				if err != nil {
					t.Fatal(err)
				}
				want, code := 401, "INVALID_KEY"
				if strings.HasPrefix(auth, "X-API-Key") {
					want, code = 403, "INSUFFICIENT_SCOPE"
				}
				if res.Status != want || res.Header.Get("X-Keygate-Error-Code") != code {
					t.Errorf("GET %s (%q): %d %s %s, want %d %s", target, auth, res.Status, res.Header.Get("X-Keygate-Error-Code"), res.Body, want, code)
				}
			}
		}
	}

	// Traefik behind a load balancer (127.0.0.9): X-Forwarded-For names
	// the client and the balancer, X-Real-Ip the balancer.
	for _, c := range []struct {
		name string
		hdr  []string
		want int
	}{
		{"behind a load balancer", []string{"X-Forwarded-For", "203.0.113.5, 127.0.0.9", "X-Real-Ip", "127.0.0.9"}, 200},
		{"forged hop left of the client", []string{"X-Forwarded-For", "203.0.113.5, 198.51.100.1, 127.0.0.9", "X-Real-Ip", "127.0.0.9"}, 403},
		{"forged X-Real-IP", []string{"X-Forwarded-For", "198.51.100.1, 127.0.0.9", "X-Real-Ip", "203.0.113.5"}, 403},
		{"X-Real-IP twice", []string{"X-Real-Ip", "203.0.113.5", "X-Real-Ip", "198.51.100.1"}, 403},
	} {
		hdr := append([]string{"X-API-Key", k.Secret, "X-Forwarded-Uri", "/public/x"}, c.hdr...)
		if r := call(t, "GET", d.url+"/v1/authz", "", nil, hdr...); r.status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.want)
		}
	}
}
