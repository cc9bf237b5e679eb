// Package reliability_test drives the real keygate binary through faults,
// floods and hostile input: crashes, a full disk, corrupted files,
// misbehaving HTTP clients, overload, and checks that secrets never leak.
// Every load is bounded in count and time and targets only 127.0.0.1.
// RELIABILITY.md reports what these tests found and their figures.
package reliability_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/daemontest"
)

// binary is the keygate binary, built once by TestMain.
var binary string

func TestMain(m *testing.M) { daemontest.Main(m, "reliability", &binary) }

// adminToken is the admin token every daemon here is started with.
const adminToken = "reliability-admin-token-0123456789"

// daemon is a running keygate process.
type daemon struct {
	*daemontest.Daemon
	url string
}

// start runs "keygate serve" on a free loopback port over data and waits
// for its banner. The daemon is killed when the test ends.
func start(t testing.TB, data string, args ...string) *daemon {
	t.Helper()
	d, err := tryStart(data, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)
	return d
}

// tryStart is start without a test: it returns an error (with the
// process's output) if the daemon exits or does not come up in 20 s.
func tryStart(data string, args ...string) (*daemon, error) {
	return newDaemon(daemontest.TryStart(binary, daemontest.Options{Data: data, AdminToken: adminToken, Args: args}))
}

// startProc starts "keygate serve" on a free port over data with args and
// no admin token: the daemon generates one.
func startProc(data string, args ...string) (*daemon, error) {
	return newDaemon(daemontest.TryStart(binary, daemontest.Options{Data: data, Args: args}))
}

func newDaemon(d *daemontest.Daemon, err error) (*daemon, error) {
	if err != nil {
		return nil, err
	}
	return &daemon{d, d.URL()}, nil
}

// term sends SIGTERM and waits (up to 20 s) for a clean exit.
func (d *daemon) term(t testing.TB) {
	t.Helper()
	err := d.Stop()
	if errors.Is(err, daemontest.ErrNoExit) {
		t.Fatalf("no exit 20s after SIGTERM\n%s", d.Output())
	}
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.Output())
	}
}

// client is shared by the tests: keep-alive, bounded, short timeouts.
var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 256},
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request; body is a string sent as is, or a value sent as
// JSON. token, if set, is sent as a bearer token.
func do(method, url, token string, body any, hdr ...string) (response, error) {
	r, err := daemontest.Request(client, method, url, token, body, hdr...)
	return response{r.Status, r.Header, r.Body}, err
}

// must is do failing the test on a transport error.
func must(t testing.TB, method, url, token string, body any, hdr ...string) response {
	t.Helper()
	r, err := do(method, url, token, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d %q: %v", r.status, r.body, err)
	}
	return m
}

// key is a created key: its id and secret.
type key struct{ id, secret string }

// createKey creates a key allowed from cidrs.
func createKey(t testing.TB, d *daemon, name string, cidrs ...string) key {
	t.Helper()
	var al []map[string]string
	for _, c := range cidrs {
		al = append(al, map[string]string{"cidr": c})
	}
	r := must(t, "POST", d.url+"/v1/keys", adminToken, map[string]any{"name": name, "allowlist": al})
	if r.status != 201 {
		t.Fatalf("create key: %d %s", r.status, r.body)
	}
	m := r.json(t)
	return key{m["id"].(string), m["secret"].(string)}
}

// check asks POST /v1/check and returns the status.
func check(d *daemon, secret, ip string) (int, error) {
	r, err := do("POST", d.url+"/v1/check", "", `{"key":"`+secret+`","ip":"`+ip+`","method":"GET","path":"/r"}`)
	return r.status, err
}

// metrics returns the daemon's unlabelled metrics and the sums of the
// labelled ones by name.
func metrics(t testing.TB, d *daemon) map[string]float64 {
	t.Helper()
	r := must(t, "GET", d.url+"/metrics", "", nil)
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		out[name] += v
		if j := strings.IndexByte(name, '{'); j > 0 {
			out[name[:j]] += v
		}
	}
	return out
}

// rssBytes returns the resident set size of pid.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return -1
}

// openFDs counts pid's open file descriptors.
func openFDs(pid int) int {
	es, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es)
}

// dirSize is the bytes allocated on disk under dir (sparse files count
// what they use).
func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// logCount returns the number of stored usage-log records of keyID.
func logCount(t testing.TB, d *daemon, keyID string) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		r := must(t, "GET", d.url+"/v1/logs?limit=1000&key_id="+keyID+"&cursor="+cursor, adminToken, nil)
		if r.status != 200 {
			t.Fatalf("logs: %d %s", r.status, r.body)
		}
		var p struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		n += len(p.Items)
		if p.NextCursor == "" {
			return n
		}
		cursor = p.NextCursor
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
