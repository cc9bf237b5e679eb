// Package pgtest runs a real PostgreSQL server for tests: initdb into a
// temporary directory, the server on 127.0.0.1 on a free port with its
// Unix socket in that directory, fsync off, and a fresh database per test.
//
// A package's tests share one server (Shared), stopped by Main from the
// package's TestMain; a test that stops and restarts the server (an
// outage) starts its own with New. A missing PostgreSQL fails the test
// with what to install; it never skips.
//
// As root, initdb and the server run as the "postgres" user (initdb
// refuses root), on directories that user owns. The server is the test
// process's child with a parent-death signal, so a test binary that dies
// does not leave it running.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PasswordRole is a login role that needs a password over TCP, for tests
// of wrong passwords; its password is Password. Every other role is
// trusted.
const (
	PasswordRole = "pgtest_pw"
	Password     = "pgtest-Secret-9f3"
)

const installHint = "PostgreSQL (initdb, postgres) is not installed: install it with `apt-get install postgresql` (looked in `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH)"

// Server is one running PostgreSQL. Its methods are safe for concurrent
// use.
type Server struct {
	bin  string // directory of initdb and postgres
	dir  string // temp dir: data/ and the socket
	port int
	cred *syscall.Credential // nil when not root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logf *os.File
}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
	dbCount   atomic.Int64
)

// Shared returns the package's one server, starting it on first use. Call
// Main from TestMain so that it is stopped at the end.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start()
	}
	if sharedErr != nil {
		tb.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// Main runs the tests and stops the shared server: call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main returning the tests' exit code, for a TestMain with more to
// clean up.
func Run(m *testing.M) int {
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		shared.destroy()
	}
	sharedMu.Unlock()
	return code
}

// New starts a server of the test's own, stopped and removed at the end
// of the test.
func New(tb testing.TB) *Server {
	tb.Helper()
	s, err := start()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(s.destroy)
	return s
}

// Port is the server's TCP port on 127.0.0.1; it stays the same across
// Stop and Start.
func (s *Server) Port() int { return s.port }

// URL is the connection URL of database db as the trusted superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// PasswordURL is the URL of database db as PasswordRole with password pw.
func (s *Server) PasswordURL(db, pw string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(PasswordRole, pw),
		Host: "127.0.0.1:" + strconv.Itoa(s.port), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// DB creates a fresh, empty database (dropped at the end of the test) and
// returns its URL.
func (s *Server) DB(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbCount.Add(1))
	if err := s.exec("CREATE DATABASE " + name + " TEMPLATE template1"); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() { _ = s.exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	return s.URL(name)
}

func (s *Server) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// findBin returns the directory holding initdb and postgres.
func findBin() (string, error) {
	var cands []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		cands = append(cands, strings.TrimSpace(string(out)))
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(m) > 0 {
		// Newest version first.
		for i := len(m) - 1; i >= 0; i-- {
			cands = append(cands, m[i])
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		cands = append(cands, filepath.Dir(p))
	}
	for _, d := range cands {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New(installHint)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func start() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir}
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs the postgres user to run initdb (it refuses root): %v; install PostgreSQL with `apt-get install postgresql`", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.destroy()
		return nil, err
	}
	if err := s.exec(fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'", PasswordRole, Password)); err != nil {
		s.destroy()
		return nil, fmt.Errorf("creating %s: %w", PasswordRole, err)
	}
	return s, nil
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

func (s *Server) initdb() error {
	data := filepath.Join(s.dir, "data")
	out, err := s.command("initdb", "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Everyone is trusted except PasswordRole over TCP.
	hba := "local all all trust\n" +
		"host all " + PasswordRole + " 127.0.0.1/32 scram-sha-256\n" +
		"host all all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(filepath.Join(data, "pg_hba.conf"), int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the (stopped) server and waits until it accepts
// connections. It is a no-op if the server runs.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := s.command("postgres", "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done, s.logf = cmd, done, logf
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			logf.Close()
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("postgres exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: sessions are disconnected)
// and waits for it to exit. Start brings it back on the same port with the
// same data.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	s.logf.Close()
	return nil
}

func (s *Server) destroy() {
	s.Stop()
	os.RemoveAll(s.dir)
}
