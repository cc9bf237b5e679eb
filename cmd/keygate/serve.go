package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"

	"github.com/keygate/keygate/keyset"
	"github.com/keygate/keygate/server"
	badgerstore "github.com/keygate/keygate/store/badger"
)

// Config is the daemon's whole configuration: the server's settings plus
// the data directory, the store's and the log's. Every setting is a flag
// of keygate serve, KEYGATE_<FLAG> in the environment and a member of the
// config file (--config), a JSON object:
//
//	{"addr": "0.0.0.0:8080", "admin_addr": "127.0.0.1:8081", "data": "/var/lib/keygate",
//	 "trusted_proxies": ["10.0.0.0/8"], "real_ip_headers": ["X-Real-IP"],
//	 "allow_private_ranges": false, "log_retention": "720h", "min_free_space": "64MiB",
//	 "routes": [{"method": "POST", "prefix": "/orders", "scope": "orders:write"}]}
//
// Command-line flags win over the environment, which wins over the file
// (see config.go).
type Config struct {
	server.Config
	// GRPCAddr, when set, is where Envoy's gRPC ext_authz
	// (envoy.service.auth.v3.Authorization/Check) is served, beside the
	// HTTP listeners and stopped with them.
	GRPCAddr string
	// Data is the Badger data directory; default "./data".
	Data string
	// MinFreeSpace is the free disk space, in bytes, kept in reserve on the
	// data directory's file system: below it management writes fail with
	// 503 and usage-log records are counted as write errors. 0 means
	// badgerstore.DefaultMinFreeSpace (64 MiB); negative disables the reserve.
	MinFreeSpace int64
	// LogRetention is how long usage-log records are kept; 0 means
	// badgerstore.DefaultRetention (30 days).
	LogRetention time.Duration
	// MaintenanceInterval is how often retention and value-log GC run; 0
	// means badgerstore.DefaultMaintenanceInterval. Set only by a hidden flag,
	// for soak tests.
	MaintenanceInterval time.Duration
	// LogLevel (debug, info, warn, error) and LogFormat (text, json) are
	// the daemon's own log's.
	LogLevel, LogFormat string
	// ConfigPath is the config file the settings were read from, if any.
	ConfigPath string
	// Fleet mode (fleet.go): the PostgreSQL database, this daemon's node
	// name, the usage-log spool bound and the start-up wait.
	Fleet
}

// tokenFile is the name of the generated admin token in the data directory.
const tokenFile = "admin-token"

// Validate reports every problem at once. An empty admin token is fine
// here: one is generated on first start.
func (c Config) Validate() error {
	var errs []error
	if c.Data == "" {
		errs = append(errs, errors.New("data: a data directory is required"))
	}
	if c.LogRetention < 0 {
		errs = append(errs, errors.New("log-retention must not be negative"))
	}
	if c.MaintenanceInterval < 0 {
		errs = append(errs, errors.New("maintenance-interval must not be negative"))
	}
	if c.GRPCAddr != "" {
		if err := server.ValidateListenAddr("grpc-addr", c.GRPCAddr); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.Fleet.validate(c.AdminToken)...)
	sc := c.Config
	if sc.AdminToken == "" {
		sc.AdminToken = "placeholder-for-validation"
	}
	if err := sc.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// adminToken returns the configured token, or the one saved in the data
// directory, or a new one it saves there (mode 0600). generated reports
// the last case, the only time the token is printed.
func adminToken(cfg Config) (tok string, generated bool, err error) {
	if cfg.AdminToken != "" {
		return cfg.AdminToken, false, nil
	}
	path := filepath.Join(cfg.Data, tokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if tok = strings.TrimSpace(string(b)); tok == "" {
			return "", false, fmt.Errorf("admin token file %s is empty: delete it to generate a new token", path)
		}
		return tok, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	tok = "kga_" + rand.Text()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("saving the admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", false, err
	}
	return tok, true, f.Close()
}

// minProcs is the fewest Ps the daemon runs with unless GOMAXPROCS is set
// explicitly. With one P, a usage-log segment write (zstd, then a Badger
// transaction: milliseconds) held the only P and every check waited behind
// it: at 10,000 checks/s on one core, p99 was 6.1 ms with one P and 1.7 ms
// with two (BENCHMARKS.md, "Open loop"). The writer now yields between
// slices of a fraction of a millisecond when it has one P, but Badger's
// own goroutines and the GC do not, so a second P is kept.
const minProcs = 2

// procs returns the GOMAXPROCS the daemon should use, given the current
// value and the GOMAXPROCS environment variable.
func procs(current int, env string) int {
	if env != "" {
		return current
	}
	return max(current, minProcs)
}

func serveCmd(args []string, stdout, stderr io.Writer) error {
	cfg, warnings, err := loadServeConfig(args, os.LookupEnv)
	if err != nil {
		return err
	}
	runtime.GOMAXPROCS(procs(runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")))
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.LogLevel))
	logger := newLogger(stderr, cfg.LogFormat, level)
	for _, w := range warnings {
		logger.Warn(w)
	}
	privateUmask()
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fromFile := cfg.AdminToken == "" // generated now, or by an earlier start
	tok, generated, err := adminToken(cfg)
	if err != nil {
		return err
	}
	cfg.AdminToken = tok
	cfg.Version = version
	cfg.Logger = logger

	began := time.Now()
	gcDone := loadingGC()
	defer gcDone()
	st, err := openStore(context.Background(), cfg, logger)
	if err != nil {
		return err
	}
	var srvRef atomic.Pointer[server.Server] // for reload, once created
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := handleSignals(logger, stop, func() { reload(logger, args, cfg, level, &srvRef, st) })
	defer signal.Stop(sigs)

	var lost error // set by watchStore before it calls stop
	go watchStore(ctx, logger, st, func(err error) { lost = err; stop() })

	srv, err := server.New(ctx, cfg.Config, st)
	gcDone()
	if err == nil {
		logLoaded(logger, time.Since(began), st, srv.KeysLoaded())
		srvRef.Store(srv)
		var ls server.Listeners
		if ls, err = srv.Listen(); err == nil {
			var g *grpcListener
			if g, err = listenGRPC(cfg.GRPCAddr, cfg.SocketMode, srv); err != nil {
				ls.Check.Close()
				if ls.Admin != nil {
					ls.Admin.Close()
				}
			} else {
				logStart(logger, cfg, ls, st)
				if sv, ok := st.(interface{ Serving() }); ok {
					sv.Serving() // the store's background work may begin
				}
				printBanner(stdout, cfg, ls, g, tok, generated, fromFile)
				// Under systemd (Type=notify) the listeners are open now, and
				// a stop signal starts the shutdown.
				notifySystemd(logger, sdnotify.SdNotifyReady)
				context.AfterFunc(ctx, func() { notifySystemd(logger, sdnotify.SdNotifyStopping) })
				sctx, cancel := context.WithCancel(ctx)
				g.start(ctx, cancel)
				err = srv.Serve(sctx, ls)
				if gerr := g.stop(cfg.ShutdownTimeout); gerr != nil && err == nil {
					err = gerr
				}
				cancel()
				logger.Info("stopped serving; flushing the usage log and closing the store")
			}
		}
	}
	if lost != nil && err == nil {
		err = lost
	}
	if ferr := st.FlushLogs(); ferr != nil && err == nil {
		err = fmt.Errorf("flushing the usage log: %w", ferr)
	}
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the store: %w", cerr)
	}
	return err
}

// loadGCPercent is the garbage collector's GOGC while the daemon opens
// its store and loads the keys. The load allocates most of what the
// daemon will hold: at the default of 100 every cycle marked the heap
// grown so far, again and again (0.5-1 s of the start's 5-6.5 s of CPU at 1M
// keys). It applies only when GOGC is not set in the environment.
const loadGCPercent = 400

// loadingGC raises GOGC to loadGCPercent for the load and returns what
// puts the previous value back (once; later calls do nothing).
func loadingGC() (done func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	prev := debug.SetGCPercent(loadGCPercent)
	return sync.OnceFunc(func() { debug.SetGCPercent(prev) })
}

// logLoaded logs how the start went, part by part: the store's Open
// (for Badger: verifying the tables, badger.Open, reading its state)
// and loading the keys (reading them, building the engine's snapshot).
// total is from the start of serve.
func logLoaded(log *slog.Logger, total time.Duration, st daemonStore, lt keyset.LoadTimes) {
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	attrs := []any{"keys", lt.Keys, "in", ms(total)}
	if ot, ok := st.(interface{ OpenTimes() badgerstore.OpenTimes }); ok {
		t := ot.OpenTimes()
		attrs = append(attrs, "verify", ms(t.Verify), "open", ms(t.Open), "state", ms(t.State))
	}
	log.Info("keys loaded", append(attrs, "read", ms(lt.Read), "build", ms(lt.Build))...)
}

// notifySystemd tells systemd the daemon's state when it runs as a
// Type=notify service (NOTIFY_SOCKET set); elsewhere it does nothing.
func notifySystemd(logger *slog.Logger, state string) {
	if _, err := sdnotify.SdNotify(false, state); err != nil {
		logger.Warn("telling systemd the service state failed", "state", state, "err", err)
	}
}

// bannerBase returns the base URL of ln for the banner and, for a Unix
// socket, the note that names it ("curl --unix-socket PATH URL" reaches
// it).
func bannerBase(ln net.Listener) (base, via string) {
	a := server.ListenAddr(ln)
	if path, ok := strings.CutPrefix(a, "unix:"); ok {
		return "http://localhost", "  (over unix:" + path + ")"
	}
	return "http://" + a, ""
}

func printBanner(w io.Writer, cfg Config, ls server.Listeners, g *grpcListener, tok string, generated, fromFile bool) {
	check, checkVia := bannerBase(ls.Check)
	admin, adminVia := check, checkVia
	if ls.Admin != nil {
		admin, adminVia = bannerBase(ls.Admin)
	}
	fmt.Fprintf(w, "keygate %s\n", version)
	fmt.Fprintf(w, "  web UI:          %s/%s\n", admin, adminVia)
	fmt.Fprintf(w, "  management API:  %s/v1/keys%s\n", admin, adminVia)
	fmt.Fprintf(w, "  check API:       %s/v1/check  (forward-auth: %s/v1/authz)%s\n", check, check, checkVia)
	if g != nil {
		fmt.Fprintf(w, "  envoy ext_authz: %s  (envoy.service.auth.v3.Authorization)\n", grpcTarget(g.ln))
	}
	fmt.Fprintf(w, "  data directory:  %s\n", cfg.Data)
	if cfg.DatabaseURL != "" {
		fmt.Fprintf(w, "  database:        %s (node %s)\n", redactURL(cfg.DatabaseURL), cfg.NodeName)
	}
	if generated {
		fmt.Fprintf(w, "  admin token:     %s\n", tok)
		fmt.Fprintf(w, "                   (generated; saved in %s, mode 0600; shown only this once)\n", filepath.Join(cfg.Data, tokenFile))
	} else if fromFile {
		fmt.Fprintf(w, "  admin token:     in %s\n", filepath.Join(cfg.Data, tokenFile))
	} else {
		fmt.Fprintf(w, "  admin token:     as configured\n")
	}
	if f, ok := w.(*os.File); ok {
		f.Sync()
	}
}
