package main

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/server/extauthz"
)

// grpcListener serves Envoy's gRPC ext_authz beside the HTTP listeners.
// A nil *grpcListener (no --grpc-addr) does nothing.
type grpcListener struct {
	ln     net.Listener
	srv    *grpc.Server
	health *health.Server
	done   chan error
}

// listenGRPC opens addr (host:port, or unix:PATH for a socket of file
// mode socketMode); "" means no gRPC listener (nil, nil).
func listenGRPC(addr string, socketMode fs.FileMode, s *server.Server) (*grpcListener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := server.ListenOn(addr, socketMode)
	if err != nil {
		return nil, fmt.Errorf("listening on grpc address %s: %w", addr, err)
	}
	g := grpc.NewServer(
		// A CheckRequest without a body is a few KiB; Envoy's
		// with_request_body is off in the shipped configuration.
		grpc.MaxRecvMsgSize(1 << 20),
	)
	extauthz.New(s).Register(g)
	// grpc.health.v1 for Envoy's grpc_health_check and Kubernetes'
	// gRPC probes: SERVING until the shutdown begins.
	h := health.NewServer()
	healthpb.RegisterHealthServer(g, h)
	return &grpcListener{ln: ln, srv: g, health: h, done: make(chan error, 1)}, nil
}

// grpcTarget names ln as a gRPC client's target: grpc://host:port, or
// unix:PATH (gRPC's own form for a socket).
func grpcTarget(ln net.Listener) string {
	a := server.ListenAddr(ln)
	if strings.HasPrefix(a, "unix:") {
		return a
	}
	return "grpc://" + a
}

// start serves in the background; if serving fails, failed is called so
// that the HTTP listeners stop too. When ctx is done (a stop signal) the
// health service answers NOT_SERVING at once, as /readyz answers 503,
// while checks are still served through --shutdown-delay and the drain.
func (g *grpcListener) start(ctx context.Context, failed func()) {
	if g == nil {
		return
	}
	context.AfterFunc(ctx, g.health.Shutdown)
	go func() {
		err := g.srv.Serve(g.ln)
		if err != nil {
			failed()
		}
		g.done <- err
	}()
}

// stop stops accepting, waits up to timeout for in-flight checks (their
// usage-log records are then flushed with the HTTP listeners'), then
// closes what is left.
func (g *grpcListener) stop(timeout time.Duration) error {
	if g == nil {
		return nil
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	g.health.Shutdown() // already, unless serving failed
	stopped := make(chan struct{})
	go func() { g.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(timeout):
		g.srv.Stop()
		<-stopped
	}
	if err := <-g.done; err != nil {
		return fmt.Errorf("grpc: %w", err)
	}
	return nil
}
