package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/daemontest"
)

// binary is the keygate binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) { daemontest.Main(m, "e2e", &binary, "-X main.version=e2e") }

// kgProc is a running keygate process.
type kgProc struct {
	*daemontest.Daemon
	url   string // check listener
	admin string // admin listener (same as url without --admin-addr)
	token string // printed admin token, if it was generated
}

// startKeygate runs "keygate serve" on a free loopback port and waits until
// it prints its banner.
func startKeygate(t *testing.T, data string, env []string, args ...string) *kgProc {
	t.Helper()
	d := daemontest.Start(t, binary, daemontest.Options{Data: data, Env: env, Args: args})
	return &kgProc{Daemon: d, url: d.URL(), admin: d.AdminURL(), token: d.Token()}
}

// stop sends sig and waits for the process to exit.
func (d *kgProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	d.Signal(sig)
	return d.exit(t)
}

// exit waits for the exit of a daemon already sent its stop signal.
func (d *kgProc) exit(t *testing.T) error {
	t.Helper()
	err := d.Wait(20 * time.Second)
	if errors.Is(err, daemontest.ErrNoExit) {
		t.Fatal("keygate did not exit after signal")
	}
	return err
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func call(t *testing.T, method, url, token string, body any, hdr ...string) resp {
	t.Helper()
	r, err := daemontest.Request(nil, method, url, token, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return resp{r.Status, r.Header, r.Body}
}

func (r resp) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	return m
}

// cli runs an admin subcommand against d and returns its stdout.
func cli(t *testing.T, d *kgProc, data string, args ...string) (string, error) {
	t.Helper()
	args = append(args[:1:1], append([]string{args[1], "--server", d.admin, "--data", data}, args[2:]...)...)
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func checkIP(t *testing.T, d *kgProc, secret, ip string) int {
	t.Helper()
	return call(t, "POST", d.url+"/v1/check", "", map[string]string{"key": secret, "ip": ip}).status
}

// TestDaemon walks through the README: first start, the CLI, checks,
// logs, CSV, and a graceful restart that keeps everything.
func TestDaemon(t *testing.T) {
	data := t.TempDir()
	d := startKeygate(t, data, nil)
	if d.token == "" {
		t.Fatalf("no generated admin token printed:\n%s", d.Output())
	}
	fi, err := os.Stat(filepath.Join(data, tokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v", err, fi.Mode())
	}

	out, err := cli(t, d, data, "keys", "create", "--name", "ci", "--scope", "orders:read", "--allow", "203.0.113.5=Office network", "--allow", "2001:db8::/48")
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, out)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &created); err != nil {
		t.Fatalf("keys create output: %v\n%s", err, out)
	}
	id, secret := created["id"].(string), created["secret"].(string)
	al := created["allowlist"].([]any)
	if len(al) != 2 || al[0].(map[string]any)["cidr"] != "203.0.113.5/32" || al[0].(map[string]any)["label"] != "Office network" {
		t.Fatalf("allowlist as stored: %v", al)
	}

	if s := checkIP(t, d, secret, "203.0.113.5"); s != 200 {
		t.Errorf("allowed IP: %d", s)
	}
	if s := checkIP(t, d, secret, "198.51.100.1"); s != 403 {
		t.Errorf("other IP: %d", s)
	}
	if s := checkIP(t, d, "kg_nope", "203.0.113.5"); s != 401 {
		t.Errorf("bad key: %d", s)
	}
	r := call(t, "GET", d.url+"/v1/authz", "", nil, "X-API-Key", secret)
	if r.status != 403 || r.header.Get("X-Keygate-Error-Code") != "IP_NOT_ALLOWED" {
		t.Errorf("authz from loopback: %d %v", r.status, r.header)
	}

	if out, err := cli(t, d, data, "allowlist", "add", id, "198.51.100.0/24", "--label", "dc"); err != nil {
		t.Fatalf("allowlist add: %v\n%s", err, out)
	}
	if s := checkIP(t, d, secret, "198.51.100.1"); s != 200 {
		t.Errorf("after add: %d", s)
	}
	if out, err := cli(t, d, data, "allowlist", "remove", id, "198.51.100.0/24"); err != nil {
		t.Fatalf("allowlist remove: %v\n%s", err, out)
	}
	if s := checkIP(t, d, secret, "198.51.100.1"); s != 403 {
		t.Errorf("after remove: %d", s)
	}
	out, err = cli(t, d, data, "allowlist", "replace", id, "10.0.0.0/8")
	if err == nil || !strings.Contains(out, "non_public_range") && !strings.Contains(out, "prefix_too_broad") {
		t.Errorf("replace with a bad entry: err %v\n%s", err, out)
	}
	if out, err := cli(t, d, data, "keys", "list"); err != nil || !strings.Contains(out, id) {
		t.Errorf("keys list: %v\n%s", err, out)
	}

	// Logs are visible within 2 s.
	deadline := time.Now().Add(3 * time.Second)
	var items []any
	for time.Now().Before(deadline) {
		items = call(t, "GET", d.admin+"/v1/logs?key_id="+id, d.token, nil).obj(t)["items"].([]any)
		if len(items) >= 5 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(items) < 5 {
		t.Fatalf("%d log items for the key after 3s, want 5", len(items))
	}
	out, err = cli(t, d, data, "logs", "query", "--key-id", id, "--status", "403")
	if err != nil || strings.Count(out, `"IP_NOT_ALLOWED"`) != 3 {
		t.Errorf("logs query: %v\n%s", err, out)
	}
	csvPath := filepath.Join(t.TempDir(), "logs.csv")
	if out, err := cli(t, d, data, "logs", "export", "-o", csvPath); err != nil {
		t.Fatalf("logs export: %v\n%s", err, out)
	}
	csv, _ := os.ReadFile(csvPath)
	if !strings.HasPrefix(string(csv), "time,key_id,ip,method,path,status,code") || strings.Count(string(csv), "\n") < 7 {
		t.Errorf("CSV:\n%s", csv)
	}

	// SIGTERM: graceful; the restart keeps keys and logs, prints no token.
	if err := d.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.Output())
	}
	d2 := startKeygate(t, data, nil)
	if d2.token != "" {
		t.Errorf("token printed again on restart:\n%s", d2.Output())
	}
	d2.token = d.token
	if s := checkIP(t, d2, secret, "203.0.113.5"); s != 200 {
		t.Errorf("after restart: %d", s)
	}
	if s := checkIP(t, d2, secret, "198.51.100.1"); s != 403 {
		t.Errorf("after restart, removed entry: %d", s)
	}
	// The five checks before the restart were flushed on SIGTERM; the two
	// after it become visible within 2 s.
	n := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && n < 7; time.Sleep(100 * time.Millisecond) {
		n = len(call(t, "GET", d2.admin+"/v1/logs?key_id="+id+"&limit=1000", d2.token, nil).obj(t)["items"].([]any))
	}
	if n < 7 {
		t.Errorf("%d log items after restart, want at least 7", n)
	}

	// A second daemon on the same data directory fails clearly.
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--data", data)
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "in use") {
		t.Errorf("second daemon on the same data: %v\n%s", err, b)
	}
}

// TestSIGKILLAfterAck: a change acknowledged by the API survives kill -9.
func TestSIGKILLAfterAck(t *testing.T) {
	data := t.TempDir()
	d := startKeygate(t, data, []string{"KEYGATE_ADMIN_TOKEN=env-token-0123456789abcdef"})
	tok := "env-token-0123456789abcdef"
	r := call(t, "POST", d.admin+"/v1/keys", tok, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id, secret := r.obj(t)["id"].(string), r.obj(t)["secret"].(string)
	r = call(t, "PUT", d.admin+"/v1/keys/"+id+"/allowlist", tok, map[string]any{"entries": []map[string]string{{"cidr": "198.51.100.0/24"}}})
	if r.status != 200 {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	d.stop(t, syscall.SIGKILL)

	d2 := startKeygate(t, data, []string{"KEYGATE_ADMIN_TOKEN=" + tok})
	if s := checkIP(t, d2, secret, "198.51.100.7"); s != 200 {
		t.Errorf("acknowledged allowlist lost after SIGKILL: %d", s)
	}
	if s := checkIP(t, d2, secret, "203.0.113.5"); s != 403 {
		t.Errorf("replaced entry still allowed after SIGKILL: %d", s)
	}
	if err := d2.stop(t, syscall.SIGINT); err != nil {
		t.Errorf("exit after SIGINT: %v", err)
	}
}

// TestConfigFile: settings and route rules from --config, flags winning,
// separate admin listener, trusted proxies.
func TestConfigFile(t *testing.T) {
	data := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "keygate.json")
	cfg := `{"admin_addr":"127.0.0.1:0","admin_token":"file-token-0123456789abcdef","trusted_proxies":["127.0.0.1"],
		"routes":[{"method":"POST","prefix":"/orders","scope":"orders:write"}]}`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startKeygate(t, data, nil, "--config", cfgPath)
	tok := "file-token-0123456789abcdef"
	if d.admin == d.url {
		t.Fatalf("admin-addr from the config file not used:\n%s", d.Output())
	}
	r := call(t, "POST", d.admin+"/v1/keys", tok, map[string]any{"name": "k", "scopes": []string{"orders:read"}, "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	if r.status != 201 {
		t.Fatalf("create on admin listener: %d %s", r.status, r.body)
	}
	secret := r.obj(t)["secret"].(string)
	if s := call(t, "POST", d.url+"/v1/keys", tok, map[string]any{"name": "x"}).status; s != 404 {
		t.Errorf("management on the check listener: %d", s)
	}
	authz := func(method string) int {
		return call(t, "GET", d.url+"/v1/authz", "", nil, "Authorization", "Bearer "+secret,
			"X-Forwarded-For", "203.0.113.5", "X-Forwarded-Method", method, "X-Forwarded-Uri", "/orders/1").status
	}
	if s := authz("GET"); s != 200 {
		t.Errorf("GET /orders through trusted proxy: %d", s)
	}
	if s := authz("POST"); s != 403 {
		t.Errorf("POST /orders without orders:write: %d", s)
	}

	// Invalid configuration: a clear error and exit code.
	for _, args := range [][]string{
		{"--trusted-proxies", "nonsense"},
		{"--admin-token", "short"},
		{"--addr", "nope"},
	} {
		cmd := exec.Command(binary, append([]string{"serve", "--data", t.TempDir()}, args...)...)
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%v: err %v, output %s", args, err, b)
		}
	}
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "keygate e2e") {
		t.Errorf("version: %v %s", err, out)
	}
}
