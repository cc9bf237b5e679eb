// Package server is keygate's HTTP front: the check path that proxies call
// (POST /v1/check and forward-auth under /v1/authz), the management API
// for keys, allowlists and usage logs, the embedded web UI, and the
// operational endpoints (/healthz, /readyz, /metrics). It serves with
// fasthttp.
//
// server is HTTP only: the live key set is package keyset's, the storage
// contract package store's and the usage-log vocabulary package
// usagelog's. It never imports a store backend; cmd/keygate wires one in.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/keyset"
	"github.com/keygate/keygate/store"
)

// Server is the keygate daemon's HTTP server. Create it with New; it is
// safe for concurrent use.
type Server struct {
	// since is the time elapsed from t by cfg.Now: a check's latency.
	since     func(t time.Time) time.Duration
	cfg       Config
	keys      *keyset.Set
	store     store.Store
	live      atomic.Pointer[liveSettings]
	policy    engine.Policy
	adminHash [32]byte
	metrics   metrics
	log       *slog.Logger
	ready     atomic.Bool
	// drain ends (endDrain) when the shutdown drain period is over:
	// streamed responses still running are then aborted.
	drain    context.Context
	endDrain context.CancelFunc
	// stopping ends (beginStop) when the listeners begin to shut down,
	// after ShutdownDelay: a running profile then ends and is delivered
	// within the drain instead of holding it open.
	stopping  context.Context
	beginStop context.CancelFunc
	// metricsHandler serves /metrics from a registry of the server's
	// collector and the Go and process collectors.
	metricsHandler fasthttp.RequestHandler
}

// New validates cfg and returns a server over st whose keys are loaded
// into a new key set.
func New(ctx context.Context, cfg Config, st store.Store) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	realClock := cfg.Now == nil
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		store:     st,
		policy:    engine.Policy{AllowPrivate: cfg.AllowPrivateRanges},
		adminHash: hashToken([]byte(cfg.AdminToken)),
		log:       cfg.Logger,
	}
	s.since = func(t time.Time) time.Duration { return s.cfg.Now().Sub(t) }
	if realClock {
		// One monotonic clock read, where time.Now reads two clocks.
		s.since = time.Since
	}
	s.drain, s.endDrain = context.WithCancel(context.Background())
	s.stopping, s.beginStop = context.WithCancel(context.Background())
	s.live.Store(compileLive(cfg))
	keys, err := keyset.Open(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.keys = keys
	s.metricsHandler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(newRegistry(s), promhttp.HandlerOpts{
		// A collector that fails (the process collector where /proc is
		// restricted) costs its own metrics, never the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	s.ready.Store(true)
	return s, nil
}

// KeysLoaded returns what loading the keys at New took.
func (s *Server) KeysLoaded() keyset.LoadTimes { return s.keys.Loaded() }

// CheckHandler serves the listener at Addr: the check path and health,
// and — unless AdminAddr is set — management, the UI and metrics.
func (s *Server) CheckHandler() fasthttp.RequestHandler {
	return s.handler(true, s.cfg.AdminAddr == "")
}

// AdminHandler serves the management API, the UI, health and metrics (the
// AdminAddr listener).
func (s *Server) AdminHandler() fasthttp.RequestHandler { return s.handler(false, true) }

func (s *Server) handler(check, admin bool) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		hid := hOther
		defer func() {
			if p := recover(); p != nil {
				s.metrics.panics.Add(1)
				s.log.Error("panic in handler", "path", string(ctx.Path()), "panic", fmt.Sprint(p))
				writeError(ctx, errInternal)
			}
			s.metrics.observeRequest(hid, ctx.Response.StatusCode())
		}()
		hid = s.dispatch(ctx, check, admin)
	}
}

// dispatch routes one request and returns which handler served it.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx, check, admin bool) handlerID {
	path := ctx.Path()
	switch {
	// First: a forward-auth request is decided as one, whatever its
	// path normalises to (see isAuthzRequest).
	case check && isAuthzRequest(ctx.Request.URI().PathOriginal(), path):
		s.handleAuthz(ctx)
		return hAuthz
	case check && string(path) == "/v1/check":
		s.handleCheck(ctx)
		return hCheck
	case string(path) == "/healthz":
		s.handleHealth(ctx)
		return hHealth
	case string(path) == "/readyz":
		s.handleReady(ctx)
		return hHealth
	case admin && string(path) == "/metrics":
		// Unauthenticated, so kept off a check listener that faces
		// clients once an admin listener exists.
		s.handleMetrics(ctx)
		return hMetrics
	}
	if !admin {
		writeError(ctx, errorf(errRouteNotFound, "no such endpoint on the check listener: management, the UI and /metrics are served on the admin address"))
		return hOther
	}
	if (hasPathPrefix(path, "/v1") || hasPathPrefix(path, "/debug")) && !plainPath(ctx.Request.Header.RequestURI(), ctx.Request.URI().PathOriginal(), path) {
		// 401 first: nothing about the path to a caller without the
		// token (the document is public).
		if string(path) != "/v1/openapi.json" && !s.admitted(ctx) {
			return hOther
		}
		writeError(ctx, errorf(ErrBadRequest, "the request target %q is not plain (keygate reads its path as %s): send the path without percent-encoding, dot segments, backslashes, repeated or trailing slashes, and no #fragment", ctx.Request.Header.RequestURI(), path))
		return hOther
	}
	if string(path) == "/v1/openapi.json" {
		s.handleOpenAPI(ctx)
		return hOther
	}
	if hasPathPrefix(path, "/v1/keys") {
		s.handleKeys(ctx)
		return hKeys
	}
	if hasPathPrefix(path, "/v1/audit") {
		s.handleAudit(ctx)
		return hKeys
	}
	if string(path) == "/v1/logs/stats" {
		s.handleLogStats(ctx)
		return hLogs
	}
	if hasPathPrefix(path, "/v1/logs") {
		s.handleLogs(ctx)
		return hLogs
	}
	if string(path) == "/v1/backup" {
		s.handleBackup(ctx)
		return hOther
	}
	if hasPathPrefix(path, "/debug/pprof") {
		s.handleDebug(ctx)
		return hOther
	}
	if hasPathPrefix(path, "/v1") {
		writeError(ctx, errorf(errRouteNotFound, "no such endpoint: %s", path))
		return hOther
	}
	s.handleUI(ctx)
	return hUI
}

// plainPath reports whether a management request's target is plain: its
// raw path is the path it is served as (no percent-encoding: "%2F" would
// be a slash, "%6B" a k; no dot segments; no empty segment, nor a
// trailing slash under /v1), holds no backslash, and the target has no
// fragment (which fasthttp drops before the path and the query are
// read). A proxy in front of management that allows or logs by path or
// query may read any of those differently from keygate; the UI and the
// CLI never send them.
func plainPath(target, raw, norm []byte) bool {
	return string(raw) == string(norm) && !bytes.ContainsRune(raw, '\\') && !bytes.ContainsRune(target, '#') &&
		(!hasPathPrefix(norm, "/v1") || norm[len(norm)-1] != '/')
}

// hasPathPrefix reports whether path is p or below p.
func hasPathPrefix(path []byte, p string) bool {
	return string(path) == p || len(path) > len(p) && string(path[:len(p)]) == p && path[len(p)] == '/'
}

func (s *Server) handleHealth(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	fmt.Fprintf(ctx, "{\"status\":\"ok\",\"version\":%q}\n", s.cfg.Version)
}

// handleReady answers /readyz: 200 while management writes can succeed,
// else 503, with the reasons in the body either way. Not ready: shutting
// down, or a local fault of the store (see store.Health: closed, free-space
// reserve reached, data directory gone). A shared store that cannot be
// reached keeps the daemon ready (the whole fleet sees the same; checks
// are answered from memory) and is listed under "degraded".
func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	var reasons, degraded []string
	if !s.ready.Load() {
		reasons = append(reasons, "shutting down")
	}
	if h, ok := s.store.(store.Health); ok {
		if err := h.Health(); errors.Is(err, store.ErrUnreachable) {
			degraded = append(degraded, err.Error())
		} else if err != nil {
			reasons = append(reasons, err.Error())
		}
	}
	snap := s.keys.Snapshot()
	body := struct {
		Status   string   `json:"status"`
		Ready    bool     `json:"ready"`
		Reasons  []string `json:"reasons,omitempty"`
		Degraded []string `json:"degraded,omitempty"`
		Keys     int      `json:"keys"`
		Seq      uint64   `json:"seq"`
	}{"ready", len(reasons) == 0, reasons, degraded, snap.Len(), snap.Seq()}
	code := fasthttp.StatusOK
	if !body.Ready {
		body.Status, code = "not ready", fasthttp.StatusServiceUnavailable
	}
	writeJSON(ctx, code, body)
}

func (s *Server) handleMetrics(ctx *fasthttp.RequestCtx) { s.metricsHandler(ctx) }

// httpServer returns a hardened fasthttp server for h.
func (s *Server) httpServer(h fasthttp.RequestHandler, name string) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      h,
		Name:                         "keygate",
		ReadTimeout:                  s.cfg.ReadTimeout,
		WriteTimeout:                 s.cfg.WriteTimeout,
		IdleTimeout:                  s.cfg.IdleTimeout,
		ReadBufferSize:               s.cfg.MaxHeaderBytes,
		MaxRequestBodySize:           s.cfg.MaxBodyBytes,
		DisablePreParseMultipartForm: true,
		// No wall-clock read per request for ctx.Time(), which keygate
		// never calls: a check reads the clock once itself.
		LazyRequestTime: true,
		NoDefaultDate:   false,
		CloseOnShutdown: true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			var sb *fasthttp.ErrSmallBuffer
			switch {
			case errors.As(err, &sb):
				err = errorf(errHeaderTooLarge, "the request header is larger than %d bytes", s.cfg.MaxHeaderBytes)
			case errors.Is(err, fasthttp.ErrBodyTooLarge):
				err = errorf(errTooLarge, "the request body is larger than %d bytes", s.cfg.MaxBodyBytes)
			default:
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					err = errorf(errTimeout, "the request was not received in time")
				} else {
					err = errorf(ErrBadRequest, "the request could not be parsed as HTTP")
				}
			}
			writeError(ctx, err)
		},
		Logger: slogPrinter{s.log.With("listener", name)},
	}
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) { p.l.Info(fmt.Sprintf(format, args...)) }

// Listeners holds the listeners Serve uses. Admin may be nil.
type Listeners struct {
	Check net.Listener
	Admin net.Listener
}

// Listen opens the configured listeners (see listen for unix: addresses).
func (s *Server) Listen() (Listeners, error) {
	var ls Listeners
	var err error
	if ls.Check, err = listen(s.cfg.Addr, s.cfg.SocketMode); err != nil {
		return ls, fmt.Errorf("server: listening on %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.AdminAddr != "" {
		if ls.Admin, err = listen(s.cfg.AdminAddr, s.cfg.SocketMode); err != nil {
			ls.Check.Close()
			return ls, fmt.Errorf("server: listening on admin address %s: %w", s.cfg.AdminAddr, err)
		}
	}
	return ls, nil
}

// Serve serves on ls until ctx is done, then stops accepting, waits for
// in-flight requests (up to ShutdownTimeout) and returns. The caller then
// flushes and closes the store. A change poller runs meanwhile.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	pollCtx, stopPoll := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		s.keys.Follow(pollCtx, s.cfg.PollInterval, func(err error) {
			s.metrics.pollErrors.Add(1)
			s.metrics.lastPollError.Store(time.Now().UnixNano())
			s.log.Warn("reading the store's changes failed", "err", err)
		})
	})

	limit := func(ln net.Listener) net.Listener {
		return &limitListener{Listener: ln, max: int64(s.cfg.MaxConns), rejected: &s.metrics.connsRejected}
	}
	servers := []*fasthttp.Server{s.httpServer(s.CheckHandler(), "check")}
	lns := []net.Listener{limit(ls.Check)}
	if ls.Admin != nil {
		servers = append(servers, s.httpServer(s.AdminHandler(), "admin"))
		lns = append(lns, limit(ls.Admin))
	}
	errc := make(chan error, len(servers))
	for i := range servers {
		go func() { errc <- servers[i].Serve(lns[i]) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.ready.Store(false)
	if err == nil && s.cfg.ShutdownDelay > 0 {
		// Still serving, /readyz now 503: the balancer's turn to move
		// traffic away before connections are refused.
		s.log.Info("shutting down: still serving while /readyz answers 503", "delay", s.cfg.ShutdownDelay.String())
		select {
		case <-time.After(s.cfg.ShutdownDelay):
		case err = <-errc:
		}
	}
	s.beginStop()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if e := srv.ShutdownWithContext(sctx); e != nil && !errors.Is(e, context.DeadlineExceeded) && err == nil {
			err = fmt.Errorf("server: shutdown: %w", e)
		}
	}
	// Shutdown closes only the listeners its Serve has reached: a stop
	// right after the start could leave one open, and a socket file
	// behind. Closing again is harmless.
	for _, ln := range lns {
		ln.Close()
	}
	// Past the drain period, what still runs is cut off: a streamed
	// export's connection is closed without the end of the response.
	if sctx.Err() != nil {
		s.log.Warn("requests still running at the end of the shutdown drain were aborted", "drain", s.cfg.ShutdownTimeout.String())
	}
	s.endDrain()
	stopPoll()
	wg.Wait()
	return err
}
