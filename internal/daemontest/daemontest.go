// Package daemontest runs the real keygate daemon for tests: it builds
// ./cmd/keygate, starts "keygate serve" on loopback over a data directory,
// waits until it serves, keeps its output for failure messages, and stops
// or kills it. It also sends the tests' HTTP requests.
//
// Only tests import it (cmd/keygate, reliability, deploy and the bench
// module). It imports nothing of keygate's, so it stays out of the
// engine, store and server dependency graph.
package daemontest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Main is a whole TestMain: it builds keygate (see Build) into a new
// temporary directory named after name, sets *bin to the binary's path,
// runs the tests, removes the directory and exits with the tests' code. A
// failed build exits with status 1 and the compiler's output.
func Main(m *testing.M, name string, bin *string, ldflags ...string) {
	dir, err := os.MkdirTemp("", "keygate-"+name)
	if err != nil {
		panic(err)
	}
	*bin, err = Build(dir, ldflags...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Build builds the keygate daemon (./cmd/keygate) into dir and returns the
// binary's path, dir/keygate. ldflags, if any, are joined into one -ldflags
// argument (e.g. "-X main.version=e2e"). The build runs in the keygate
// module's root, with its go.mod, also when called from another module
// (bench/). It returns an error instead of failing a test: see Main.
func Build(dir string, ldflags ...string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin, err := filepath.Abs(filepath.Join(dir, "keygate"))
	if err != nil {
		return "", err
	}
	args := []string{"build"}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	cmd := exec.Command("go", append(args, "-o", bin, "./cmd/keygate")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building keygate: %v\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot is the directory of the keygate module as the go command
// resolves it from the working directory (through bench's replace
// directive in bench/).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/keygate/keygate").Output()
	if err != nil {
		return "", fmt.Errorf("locating the keygate module: %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// FreeAddr returns a loopback address (127.0.0.1:port) whose port was free
// a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Options says how to start the daemon. The command line is
//
//	keygate serve --addr Addr --data Data [--admin-token AdminToken]
//		[--database-url DatabaseURL] [--node-name NodeName] Args...
type Options struct {
	// Data is the data directory. Start defaults it to a new directory
	// under t.TempDir(); TryStart requires it.
	Data string
	// AdminToken, if set, is passed as --admin-token. If empty the daemon
	// takes the environment's, the config file's or its data directory's
	// token, or generates one and prints it.
	AdminToken string
	// Addr is the check listener's address; default 127.0.0.1:0, a port
	// the kernel picks (the daemon's banner tells it).
	Addr string
	// DatabaseURL, if set, is passed as --database-url: fleet mode on
	// PostgreSQL (internal/pgtest runs one), which needs AdminToken.
	DatabaseURL string
	// NodeName, if set, is passed as --node-name.
	NodeName string
	// Args are more serve flags.
	Args []string
	// Env is added to the test process's environment.
	Env []string
	// ProcessGroup starts the daemon in its own process group; every
	// signal goes to the whole group.
	ProcessGroup bool

	// StartTimeout bounds the wait for the whole start-up banner: the
	// listeners are open once it is printed. Default 20 s.
	StartTimeout time.Duration
	// ReadyPath, if set (e.g. "/readyz"), is then polled on the check
	// listener every ReadyInterval (default 20 ms) until it answers 200,
	// for at most ReadyTimeout (default 10 s).
	ReadyPath     string
	ReadyTimeout  time.Duration
	ReadyInterval time.Duration

	// StopSignal (default SIGTERM) and StopTimeout (default 20 s) are what
	// Stop sends and how long it waits before it kills.
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// Graceful makes Start's cleanup Stop the daemon and log its output if
	// the test failed. Without it the cleanup kills the daemon (SIGKILL).
	Graceful bool
}

// ErrNoExit is returned (wrapped) by Stop and StopWith when the daemon did
// not exit in time after the signal and had to be killed.
var ErrNoExit = errors.New("no exit in time after the signal")

// Daemon is a running keygate daemon.
type Daemon struct {
	opts   Options
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the exit status, once exited is closed

	// From the banner, set before Start returns. A listener on a Unix
	// socket has the URL http://localhost and its socket's path.
	url, adminURL, printedToken string
	checkSock, adminSock        string

	mu             sync.Mutex
	stdout, stderr bytes.Buffer
}

var (
	reUI    = regexp.MustCompile(`web UI:\s+(http://\S+)/`)
	reCheck = regexp.MustCompile(`check API:\s+(http://\S+)/v1/check`)
	reToken = regexp.MustCompile(`admin token:\s+(kga_\S+)`)
	reSock  = regexp.MustCompile(`\(over unix:(\S+)\)$`)
)

// Start starts the daemon bin (see Build) with opts and returns once it
// serves; it fails the test if the daemon exits first or does not come up
// in time, with the daemon's output. The daemon is killed, or with
// opts.Graceful stopped, when the test ends.
func Start(t testing.TB, bin string, opts Options) *Daemon {
	t.Helper()
	if opts.Data == "" {
		opts.Data = filepath.Join(t.TempDir(), "data")
	}
	d, err := TryStart(bin, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !opts.Graceful {
			d.Kill()
			return
		}
		d.Stop()
		if t.Failed() {
			t.Logf("keygate output:\n%s", d.Output())
		}
	})
	return d
}

// TryStart is Start without a test: it returns an error with the daemon's
// output if the daemon exits before it serves or does not come up in time,
// and nobody stops the daemon it returns but the caller.
func TryStart(bin string, opts Options) (*Daemon, error) {
	if opts.Data == "" {
		return nil, errors.New("daemontest: Options.Data is required")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 20 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 10 * time.Second
	}
	if opts.ReadyInterval == 0 {
		opts.ReadyInterval = 20 * time.Millisecond
	}
	if opts.StopSignal == 0 {
		opts.StopSignal = syscall.SIGTERM
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 20 * time.Second
	}
	args := []string{"serve", "--addr", opts.Addr, "--data", opts.Data}
	if opts.AdminToken != "" {
		args = append(args, "--admin-token", opts.AdminToken)
	}
	if opts.DatabaseURL != "" {
		args = append(args, "--database-url", opts.DatabaseURL)
	}
	if opts.NodeName != "" {
		args = append(args, "--node-name", opts.NodeName)
	}
	cmd := exec.Command(bin, append(args, opts.Args...)...)
	cmd.Env = append(os.Environ(), opts.Env...)
	if opts.ProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	d := &Daemon{opts: opts, cmd: cmd, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = lockedWriter{&d.mu, &d.stderr}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.err = cmd.Wait(); pw.Close(); close(d.exited) }()

	// The banner ends with the admin token line; the fields it sets are
	// read only after banner is closed.
	banner := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		done := false
		for sc.Scan() {
			line := sc.Text()
			lockedWriter{&d.mu, &d.stdout}.Write([]byte(line + "\n"))
			if done {
				continue
			}
			sock := ""
			if m := reSock.FindStringSubmatch(line); m != nil {
				sock = m[1]
			}
			if m := reUI.FindStringSubmatch(line); m != nil {
				d.adminURL, d.adminSock = m[1], sock
			}
			if m := reCheck.FindStringSubmatch(line); m != nil {
				d.url, d.checkSock = m[1], sock
			}
			if m := reToken.FindStringSubmatch(line); m != nil {
				d.printedToken = m[1]
			}
			if strings.Contains(line, "admin token:") {
				done = true
				close(banner)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-banner:
	case <-d.exited:
		return nil, fmt.Errorf("keygate exited before serving: %v\noutput:\n%s", d.err, d.Output())
	case <-time.After(opts.StartTimeout):
		d.Kill()
		return nil, fmt.Errorf("keygate did not start in %v\noutput:\n%s", opts.StartTimeout, d.Output())
	}
	if opts.ReadyPath != "" {
		if err := d.waitReady(); err != nil {
			d.Kill()
			return nil, err
		}
	}
	return d, nil
}

// waitReady polls opts.ReadyPath until it answers 200.
func (d *Daemon) waitReady() error {
	c := d.Client()
	c.Timeout = time.Second
	url := d.url + d.opts.ReadyPath
	deadline := time.Now().Add(d.opts.ReadyTimeout)
	for {
		res, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		select {
		case <-d.exited:
			return fmt.Errorf("keygate exited before %s answered: %v\noutput:\n%s", url, d.err, d.Output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v\noutput:\n%s", url, d.opts.ReadyTimeout, err, d.Output())
		}
		time.Sleep(d.opts.ReadyInterval)
	}
}

// URL is the check listener's base URL, http://127.0.0.1:port, or
// http://localhost for a Unix socket (see CheckSocket and Client).
func (d *Daemon) URL() string { return d.url }

// CheckSocket is the path of the check listener's Unix socket, or "" if it
// listens on TCP.
func (d *Daemon) CheckSocket() string { return d.checkSock }

// AdminSocket is the path of the management listener's Unix socket, or ""
// if it listens on TCP.
func (d *Daemon) AdminSocket() string { return d.adminSock }

// Client returns a new client for the check listener: over its socket if
// it has one.
func (d *Daemon) Client() *http.Client { return clientFor(d.checkSock) }

// AdminClient returns a new client for the management listener.
func (d *Daemon) AdminClient() *http.Client { return clientFor(d.adminSock) }

func clientFor(sock string) *http.Client {
	if sock == "" {
		return &http.Client{Timeout: 10 * time.Second}
	}
	return UnixClient(sock)
}

// UnixClient is an HTTP client whose every connection goes to the Unix
// socket at path, whatever the URL's host.
func UnixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// Addr is the check listener's address, 127.0.0.1:port.
func (d *Daemon) Addr() string { return strings.TrimPrefix(d.url, "http://") }

// AdminURL is the base URL of the management API and the web UI: the
// check listener's unless the daemon has a separate admin listener.
func (d *Daemon) AdminURL() string { return d.adminURL }

// Token is the admin token: Options.AdminToken, or else the one the
// daemon printed, which it does only when it generated it (first start
// on a data directory, no token configured). It is "" if neither.
func (d *Daemon) Token() string {
	if d.opts.AdminToken != "" {
		return d.opts.AdminToken
	}
	return d.printedToken
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Output returns what the daemon wrote so far: stdout, then stderr.
func (d *Daemon) Output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stdout.String() + d.stderr.String()
}

// Signal sends sig to the daemon, or to its process group with
// Options.ProcessGroup. It does nothing once the daemon has exited.
func (d *Daemon) Signal(sig syscall.Signal) {
	select {
	case <-d.exited:
		return
	default:
	}
	if d.opts.ProcessGroup {
		syscall.Kill(-d.cmd.Process.Pid, sig)
		return
	}
	d.cmd.Process.Signal(sig)
}

// wait waits up to timeout for the daemon to exit and returns its exit
// status (nil for a clean exit) and whether it exited.
func (d *Daemon) wait(timeout time.Duration) (exitErr error, exited bool) {
	select {
	case <-d.exited:
		return d.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Wait waits up to timeout for the exit of a daemon already sent its stop
// signal (Signal), and returns its exit status. A daemon still running
// then is killed, and the error wraps ErrNoExit. Sending the signal again
// instead (StopWith) races the daemon's exit: a signal that arrives after
// it stopped listening for signals ends it with that signal's default
// action, not with its own exit status.
func (d *Daemon) Wait(timeout time.Duration) error {
	if err, ok := d.wait(timeout); ok {
		return err
	}
	d.Kill()
	return fmt.Errorf("keygate: %w (waited %v after the signal); killed", ErrNoExit, timeout)
}

// StopWith sends sig and waits up to timeout for the exit, and returns the
// exit status. A daemon still running then is killed, and the error wraps
// ErrNoExit. Stopping an exited daemon returns its exit status again.
func (d *Daemon) StopWith(sig syscall.Signal, timeout time.Duration) error {
	d.Signal(sig)
	return d.Wait(timeout)
}

// Stop is StopWith(Options.StopSignal, Options.StopTimeout): by default
// SIGTERM and 20 s.
func (d *Daemon) Stop() error { return d.StopWith(d.opts.StopSignal, d.opts.StopTimeout) }

// Kill sends SIGKILL and waits for the exit. It may be called again.
func (d *Daemon) Kill() {
	d.Signal(syscall.SIGKILL)
	<-d.exited
}

// Admin sends a request to the daemon's management API (AdminURL()+path)
// with its Token(); see Request.
func (d *Daemon) Admin(method, path string, body any) (Response, error) {
	var c *http.Client
	if d.adminSock != "" {
		c = UnixClient(d.adminSock)
		defer c.CloseIdleConnections()
	}
	return Request(c, method, d.AdminURL()+path, d.Token(), body)
}

// Response is an HTTP answer, read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request sends one request with c (http.DefaultClient if nil) and reads
// the whole answer. body is sent as is if it is a string or a []byte, as
// JSON if it is another value, and not at all if nil. token, if set, is
// sent as a bearer token; hdr are more header names and values, in pairs
// (a name may repeat; "Host" sets the request's host). It returns an
// error, with the answer, when the exchange disagrees with
// api/openapi.yaml (see apispec.Spec.Validate).
func Request(c *http.Client, method, url, token string, body any, hdr ...string) (Response, error) {
	if c == nil {
		c = http.DefaultClient
	}
	var rd io.Reader
	var sent []byte
	switch b := body.(type) {
	case nil:
	case string:
		sent = []byte(b)
		rd = strings.NewReader(b)
	case []byte:
		sent = b
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		sent = j
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return Response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") { // net/http sends req.Host, not a Host header
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Response{res.StatusCode, res.Header, b}, err
	}
	r := Response{res.StatusCode, res.Header, b}
	return r, validateAPI(req, sent, res, b)
}

// lockedWriter appends to a buffer under a mutex, so that Output can read
// while the daemon writes.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Raw writes req, a whole HTTP/1.1 request as bytes ("\r\n" line ends),
// to addr (host:port) as it is — no client-side cleaning of the request
// target — and reads one answer.
func Raw(addr, req string) (Response, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return Response{}, err
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return Response{res.StatusCode, res.Header, b}, err
}
