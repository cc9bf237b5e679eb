// Package reliability_test drives the real keygate binary through faults,
// floods and hostile input: crashes, a full disk, corrupted files,
// misbehaving HTTP clients, overload, and checks that secrets never leak.
// Every load is bounded in count and time and targets only 127.0.0.1.
// RELIABILITY.md reports what these tests found and their figures.
package reliability_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the keygate binary, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keygate-reliability")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "keygate")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/keygate").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building keygate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// adminToken is the admin token every daemon here is started with.
const adminToken = "reliability-admin-token-0123456789"

// daemon is a running keygate process.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	data   string
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{}
	err    error
}

var reCheck = regexp.MustCompile(`check API:\s+(http://\S+)/v1/check`)

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs "keygate serve" on a free loopback port over data and waits
// for its banner. The daemon is killed when the test ends.
func start(t testing.TB, data string, args ...string) *daemon {
	t.Helper()
	d, err := tryStart(data, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.kill() })
	return d
}

// tryStart is start without a test: it returns an error (with the
// process's output) if the daemon exits or does not come up in 20 s.
func tryStart(data string, args ...string) (*daemon, error) {
	return startProc(data, append([]string{"--admin-token", adminToken}, args...)...)
}

// startProc starts "keygate serve" on a free port over data with args.
func startProc(data string, args ...string) (*daemon, error) {
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, args...)...)
	cmd.Env = os.Environ()
	d := &daemon{cmd: cmd, data: data, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = lockedWriter{&d.mu, &d.stderr}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.err = cmd.Wait(); pw.Close(); close(d.exited) }()
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			lockedWriter{&d.mu, &d.stdout}.Write([]byte(line + "\n"))
			if m := reCheck.FindStringSubmatch(line); m != nil {
				up <- m[1]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case d.url = <-up:
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("keygate exited before serving: %v\nstderr:\n%s", d.err, d.output())
	case <-time.After(20 * time.Second):
		d.kill()
		return nil, fmt.Errorf("keygate did not start in 20s\nstderr:\n%s", d.output())
	}
}

// output returns what the daemon wrote to stdout and stderr so far.
func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stdout.String() + d.stderr.String()
}

// kill sends SIGKILL and waits for the exit.
func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// term sends SIGTERM and waits (up to 20 s) for a clean exit.
func (d *daemon) term(t testing.TB) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", d.err, d.output())
		}
	case <-time.After(20 * time.Second):
		d.kill()
		t.Fatalf("no exit 20s after SIGTERM\n%s", d.output())
	}
}

// pid is the daemon's process id.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

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
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}, err
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
