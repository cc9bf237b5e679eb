package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/store"
	badgerstore "github.com/keygate/keygate/store/badger"
)

// Signals of keygate serve:
//
//   - SIGTERM, SIGINT and SIGQUIT stop it gracefully: the listeners stop
//     accepting, in-flight requests get ShutdownTimeout (10 s), the usage
//     log is flushed and the store closed; exit status 0. SIGQUIT is
//     handled so too rather than with Go's goroutine dump and exit 2,
//     which would lose the queued usage-log records. A second stop signal
//     during the drain is logged and changes nothing.
//   - SIGHUP reloads the settings that can change while running (see
//     reload), from the config file, the environment and the command line.
//   - SIGUSR1, SIGUSR2 and SIGPIPE are ignored.
//
// Only SIGKILL (or a crash) loses acknowledged usage-log records.

// handleSignals starts the signal handler: stop on the first stop signal,
// onHUP on each SIGHUP. It returns the channel to signal.Stop.
func handleSignals(log *slog.Logger, stop context.CancelFunc, onHUP func()) chan os.Signal {
	signal.Ignore(syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	go func() {
		stopping := false
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP:
				onHUP()
			case stopping:
				log.Warn("already shutting down", "signal", sig.String())
			default:
				stopping = true
				log.Info("shutting down", "signal", sig.String())
				stop()
			}
		}
	}()
	return sigs
}

// reload rereads the configuration and applies what can change while the
// daemon runs: trusted proxies (and trust_all_proxies), real-IP headers,
// route rules (server.Reloadable), the usage-log retention and the log
// level. A configuration with any error changes nothing; a change to a
// setting that needs a restart is reported and not applied.
func reload(log *slog.Logger, args []string, running Config, level *slog.LevelVar, srv *atomic.Pointer[server.Server], st daemonStore) {
	cfg, warnings, err := loadServeConfig(args, os.LookupEnv)
	if err != nil {
		log.Error("SIGHUP: the configuration is not valid; keeping the running settings", "err", err)
		return
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	s := srv.Load()
	if s == nil {
		log.Warn("SIGHUP before the server started: ignored")
		return
	}
	changed, err := s.Reload(cfg.Config)
	if err != nil {
		log.Error("SIGHUP: the configuration is not valid; keeping the running settings", "err", err)
		return
	}
	if got, want := st.Retention(), effectiveRetention(cfg.LogRetention); got != want {
		st.SetRetention(want)
		changed = append(changed, fmt.Sprintf("log_retention: %s -> %s", got, want))
	}
	if got, want := level.Level(), parseLevel(cfg.LogLevel); got != want {
		level.Set(want)
		changed = append(changed, fmt.Sprintf("log_level: %s -> %s", strings.ToLower(got.String()), strings.ToLower(want.String())))
	}
	if restart := needsRestart(running, cfg); len(restart) > 0 {
		log.Warn("SIGHUP: these settings changed but take a restart; still running with the old values", "settings", strings.Join(restart, ", "))
	}
	if len(changed) == 0 {
		log.Info("SIGHUP: configuration reloaded; nothing changed")
		return
	}
	log.Info("SIGHUP: configuration reloaded", "changed", strings.Join(changed, "; "))
}

func effectiveRetention(d time.Duration) time.Duration {
	if d == 0 {
		return badgerstore.DefaultRetention
	}
	return d
}

// needsRestart names the settings that differ between the running
// configuration and cfg and that reload cannot apply.
func needsRestart(running, cfg Config) []string {
	var out []string
	add := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	add("addr", running.Addr != cfg.Addr)
	add("admin_addr", running.AdminAddr != cfg.AdminAddr)
	add("data", running.Data != cfg.Data)
	add("admin_token", cfg.AdminToken != "" && running.AdminToken != cfg.AdminToken)
	add("allow_private_ranges", running.AllowPrivateRanges != cfg.AllowPrivateRanges)
	add("max_conns", running.MaxConns != cfg.MaxConns)
	add("min_free_space", running.MinFreeSpace != cfg.MinFreeSpace)
	add("maintenance_interval", running.MaintenanceInterval != cfg.MaintenanceInterval)
	add("log_format", running.LogFormat != cfg.LogFormat)
	return out
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s)) // validated: debug, info, warn, error
	return l
}

func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logStart logs the settings in effect, once the listeners are open.
func logStart(log *slog.Logger, cfg Config, ls server.Listeners, st daemonStore) {
	admin := "(check listener)"
	if ls.Admin != nil {
		admin = server.ListenAddr(ls.Admin)
	}
	trusted := "none"
	if len(cfg.TrustedProxies) > 0 {
		trusted = strings.Join(cfg.TrustedProxies, ",")
	}
	reserve := "64MiB (default)"
	switch {
	case cfg.MinFreeSpace < 0:
		reserve = "off"
	case cfg.MinFreeSpace > 0:
		reserve = fmt.Sprintf("%d bytes", cfg.MinFreeSpace)
	}
	log.Info("keygate started",
		"version", version,
		"check_addr", server.ListenAddr(ls.Check),
		"admin_addr", admin,
		"trusted_proxies", trusted,
		"trust_all_proxies", cfg.TrustAllProxies,
		"routes", len(cfg.Routes),
		"log_retention", st.Retention().String(),
		"min_free_space", reserve,
		"store", storeName(cfg),
		"config", cmpOr(cfg.ConfigPath, "none"),
		"log_level", cfg.LogLevel,
	)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// watchStore asks the store every second whether its storage is still
// there (store.ErrGone: the data directory was removed or moved) and, once
// it is not, logs it and calls lost: the daemon then shuts down (exit
// status 1), since nothing more it acknowledges could be kept.
func watchStore(ctx context.Context, log *slog.Logger, st store.Health, lost func(error)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := st.Health(); errors.Is(err, store.ErrGone) {
				log.Error("shutting down: the store cannot save anything more", "err", err)
				lost(err)
				return
			}
		}
	}
}

// storeName names the store in the start-up log line, without a password.
func storeName(cfg Config) string {
	if cfg.DatabaseURL != "" {
		return "postgres " + redactURL(cfg.DatabaseURL) + " node " + nodeName(cfg)
	}
	return "badger " + cfg.Data
}
