//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/keygate/keygate/bench/internal/evloop"
	"github.com/keygate/keygate/server"
	badgerstore "github.com/keygate/keygate/store/badger"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "keygate-evloop:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("keygate-evloop", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "check listener: loopback host:port or unix:PATH, on the event loop")
	adminAddr := fs.String("admin-addr", "", "admin listener (fasthttp, as keygate serve's); required")
	data := fs.String("data", "./data", "Badger data directory")
	token := fs.String("admin-token", "", "admin token")
	trusted := fs.String("trusted-proxies", "", "comma-separated trusted proxies (unix: every Unix-socket peer)")
	lock := fs.Bool("lock", false, "lock the loop's goroutine to its thread (then no -yield or -park)")
	yield := fs.Bool("yield", false, "yield to the other goroutines between batches, block in epoll_wait (evloop.Options.Yield)")
	park := fs.Bool("park", true, "wait in the runtime's netpoller, yield between batches (evloop.Options.Park)")
	fs.Parse(args)
	if *adminAddr == "" {
		return errors.New("--admin-addr is required")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := server.Config{Addr: *addr, AdminAddr: *adminAddr, AdminToken: *token, Logger: logger}
	if *trusted != "" {
		cfg.TrustedProxies = strings.Split(*trusted, ",")
	}
	host, _ := os.Hostname()
	st, err := badgerstore.Open(badgerstore.DefaultOptions(*data).WithLogger(logger).WithNode(host))
	if err != nil {
		return fmt.Errorf("opening the store in %s: %w", *data, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	srv, err := server.New(ctx, cfg, st)
	if err != nil {
		st.Close()
		return err
	}
	h := newHandler(srv.CheckHandler(), logger)
	l, err := evloop.New(h, evloop.Options{Lock: *lock, Yield: *yield && !*lock, Park: *park && !*lock, IdleTicks: 60, ReadTicks: 10, WriteTicks: 10}, *addr)
	if err != nil {
		st.Close()
		return err
	}
	admin, err := net.Listen("tcp", *adminAddr)
	if err != nil {
		l.Close()
		st.Close()
		return err
	}
	st.Serving()
	loopDone := make(chan error, 1)
	go func() { loopDone <- l.Run() }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		select {
		case <-sig:
		case err := <-loopDone:
			logger.Error("event loop stopped", "err", err)
			loopDone <- err
		}
		stop()
	}()
	logger.Info("serving", "check", *addr, "admin", *adminAddr)
	err = srv.Serve(ctx, server.Listeners{Check: newIdleListener(*addr), Admin: admin})
	l.Stop()
	<-loopDone
	if ferr := st.FlushLogs(); ferr != nil && err == nil {
		err = ferr
	}
	if cerr := st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// idleListener is the check listener Server.Serve gets: it accepts
// nothing (the event loop serves the check address) until closed.
type idleListener struct {
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func newIdleListener(addr string) *idleListener {
	var a net.Addr = &net.UnixAddr{Name: strings.TrimPrefix(addr, "unix:"), Net: "unix"}
	if !strings.HasPrefix(addr, "unix:") {
		a, _ = net.ResolveTCPAddr("tcp", addr)
	}
	return &idleListener{addr: a, closed: make(chan struct{})}
}

func (l *idleListener) Accept() (net.Conn, error) { <-l.closed; return nil, net.ErrClosed }
func (l *idleListener) Close() error              { l.once.Do(func() { close(l.closed) }); return nil }
func (l *idleListener) Addr() net.Addr            { return l.addr }
