package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// goTool runs `go tool args...` with the go command on PATH (the one
// that runs the tests), so that a profile the server wrote is read by
// the program people read it with.
func goTool(t *testing.T, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the profiles: %v", err)
	}
	out, err := exec.Command(gobin, append([]string{"tool"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func saveBody(t *testing.T, r response, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(p, r.body, 0o600))
	return p
}

func TestDebugProfiles(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.AdminAddr = "127.0.0.1:0" })
	auth := []string{"Authorization", "Bearer " + testToken}

	// Behind the admin token, on the admin listener only, GET only.
	for _, p := range []string{"heap", "goroutine", "profile?seconds=1", "trace?seconds=1", "nosuch", ""} {
		wantStatus(t, do(t, "GET", ts.adminURL+"/debug/pprof/"+p, nil), 401, p+" without a token")
		wantStatus(t, do(t, "GET", ts.adminURL+"/debug/pprof/"+p, nil, "Authorization", "Bearer kga_wrong"), 401, p+" with a wrong token")
		wantStatus(t, do(t, "GET", ts.checkURL+"/debug/pprof/"+p, nil, auth...), 404, p+" on the check listener")
		wantStatus(t, do(t, "POST", ts.adminURL+"/debug/pprof/"+p, nil, auth...), 405, p+" by POST")
	}

	// The named profiles, in pprof's format (gzipped protocol buffers)
	// that go tool pprof reads, or as text.
	r := do(t, "GET", ts.adminURL+"/debug/pprof/heap", nil, auth...)
	wantStatus(t, r, 200, "heap")
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("heap Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("heap Cache-Control %q", cc)
	}
	if zr, err := gzip.NewReader(bytes.NewReader(r.body)); err != nil {
		t.Errorf("heap profile is not gzip: %v", err)
	} else if b, _ := io.ReadAll(zr); len(b) == 0 {
		t.Error("heap profile is empty")
	}
	if out := goTool(t, "pprof", "-top", saveBody(t, r, "heap.pprof")); !strings.Contains(out, "Type: inuse_space") {
		t.Errorf("go tool pprof -top on the heap profile:\n%s", out)
	}
	r = do(t, "GET", ts.adminURL+"/debug/pprof/goroutine?debug=1", nil, auth...)
	wantStatus(t, r, 200, "goroutine?debug=1")
	if !strings.Contains(string(r.body), "goroutine profile: total") || !strings.Contains(string(r.body), "handleDebug") {
		t.Errorf("goroutine?debug=1 does not list the goroutines, its own among them:\n%.2000s", r.body)
	}
	for _, p := range debugProfiles {
		wantStatus(t, do(t, "GET", ts.adminURL+"/debug/pprof/"+p, nil, auth...), 200, p)
	}

	// A CPU profile for ?seconds=, read by go tool pprof.
	began := time.Now()
	r = do(t, "GET", ts.adminURL+"/debug/pprof/profile?seconds=1", nil, auth...)
	wantStatus(t, r, 200, "profile")
	if d := time.Since(began); d < time.Second {
		t.Errorf("a 1 s CPU profile came back after %v", d)
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="keygate-profile.pprof"` {
		t.Errorf("profile Content-Disposition %q", cd)
	}
	if out := goTool(t, "pprof", "-top", saveBody(t, r, "cpu.pprof")); !strings.Contains(out, "Type: cpu") {
		t.Errorf("go tool pprof -top on the CPU profile:\n%s", out)
	}

	// An execution trace, read by go tool trace.
	r = do(t, "GET", ts.adminURL+"/debug/pprof/trace?seconds=1", nil, auth...)
	wantStatus(t, r, 200, "trace")
	if !bytes.HasPrefix(r.body, []byte("go 1.")) {
		t.Errorf("trace starts %q", r.body[:min(len(r.body), 16)])
	}
	goTool(t, "trace", "-d=footprint", saveBody(t, r, "keygate.trace"))

	// One CPU profile (and one trace) at a time in a process: the
	// second gets 409 while the first runs, and the first still ends
	// whole.
	for _, p := range []string{"profile", "trace"} {
		var wg sync.WaitGroup
		var first response
		wg.Go(func() { first = do(t, "GET", ts.adminURL+"/debug/pprof/"+p+"?seconds=2", nil, auth...) })
		time.Sleep(500 * time.Millisecond)
		r = do(t, "GET", ts.adminURL+"/debug/pprof/"+p+"?seconds=1", nil, auth...)
		wantStatus(t, r, 409, "a second "+p)
		if !strings.Contains(string(r.body), "already running") {
			t.Errorf("second %s: %s", p, r.body)
		}
		wg.Wait()
		wantStatus(t, first, 200, "the first "+p)
	}

	// Bad parameters: 400 saying what is wanted; nothing starts.
	for _, q := range []string{"profile?seconds=0", "profile?seconds=121", "profile?seconds=abc", "profile?seconds=", "profile?seconds=1&seconds=2",
		"trace?seconds=61", "trace?seconds=-1", "heap?debug=3", "heap?debug=x", "goroutine?debug=1&debug=2",
		"heap?seconds=5", "heap?gc=1", "profile?debug=1", "trace?seconds=1&x=2"} {
		r := do(t, "GET", ts.adminURL+"/debug/pprof/"+q, nil, auth...)
		wantStatus(t, r, 400, q)
		if m := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(m, "want") && !strings.Contains(m, "once") && !strings.Contains(m, "it takes") && !strings.Contains(m, "no value") {
			t.Errorf("%s: message %q says nothing of what is wanted", q, m)
		}
	}
	// Unknown profiles: 404 naming the ones there are.
	for _, p := range []string{"/nosuch", "/", "", "/heap/x", "/Heap"} {
		r := do(t, "GET", ts.adminURL+"/debug/pprof"+p, nil, auth...)
		wantStatus(t, r, 404, "profile "+p)
		if !strings.Contains(string(r.body), "goroutine") {
			t.Errorf("profile %q: %s", p, r.body)
		}
	}
}

// A client that goes away during a CPU profile does not leave it
// running: the next one starts once the first one's time is up.
func TestDebugProfileClientGone(t *testing.T) {
	ts := startServer(t, nil)
	c := &http.Client{Timeout: 200 * time.Millisecond}
	req, err := http.NewRequest("GET", ts.adminURL+"/debug/pprof/profile?seconds=1", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err := c.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body) // the timeout cuts the body
		resp.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := ts.admin(t, "GET", "/debug/pprof/profile?seconds=1", nil)
		if r.status == 200 {
			break
		}
		if r.status != 409 || time.Now().After(deadline) {
			t.Fatalf("after a client left a CPU profile: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A profile running when the server is told to stop ends then, shorter
// but whole, and is delivered within the drain: the stop does not wait
// for the profile's seconds, and the client gets a profile, not a cut
// connection.
func TestDebugProfileEndsAtShutdown(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.ShutdownTimeout = 10 * time.Second })
	got := make(chan response, 1)
	go func() { got <- ts.admin(t, "GET", "/debug/pprof/profile?seconds=60", nil) }()
	time.Sleep(500 * time.Millisecond)
	began := time.Now()
	ts.cancel()
	select {
	case err := <-ts.done:
		ts.done <- err // for the cleanup
	case <-time.After(8 * time.Second):
		t.Fatal("Serve did not return within 8 s of the stop while a 60 s CPU profile ran")
	}
	r := <-got
	wantStatus(t, r, 200, "the profile running at the stop")
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("the stop took %v", d)
	}
	goTool(t, "pprof", "-top", saveBody(t, r, "cpu.pprof"))
}
