package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/store"
	badgerstore "github.com/keygate/keygate/store/badger"
	"github.com/keygate/keygate/store/postgres"
)

// Fleet is the configuration of fleet mode: several daemons on one
// PostgreSQL database. Without DatabaseURL the daemon runs on its Badger
// data directory as before.
type Fleet struct {
	// DatabaseURL is the PostgreSQL database (postgres://user:password@
	// host:port/database); "" runs on the Badger directory in Data.
	DatabaseURL string
	// NodeName names this daemon in its usage-log records; default the
	// host name, ":" and the check listener's port.
	NodeName string
	// SpoolMaxBytes bounds the file in Data that holds usage-log records
	// while the database is unreachable; what does not fit is counted as
	// dropped. 0 means postgres.DefaultSpoolMaxBytes (256 MiB).
	SpoolMaxBytes int64
	// DatabaseWait is how long a daemon that starts while the database is
	// unreachable keeps trying before it exits; 0 means 30 s.
	DatabaseWait time.Duration
}

// defaultDatabaseWait is the start-up wait for an unreachable database.
const defaultDatabaseWait = 30 * time.Second

// spoolDir is the spool's directory below the data directory.
const spoolDir = "spool"

// validate lists what is wrong with f. Every daemon of a fleet must
// accept the same admin token, so fleet mode needs one configured: a token
// generated into one daemon's data directory would be unknown to the
// others.
func (f Fleet) validate(adminToken string) []error {
	var errs []error
	if f.SpoolMaxBytes < 0 {
		errs = append(errs, errors.New("spool-max-bytes must not be negative"))
	}
	if f.DatabaseWait < 0 {
		errs = append(errs, errors.New("database-wait must not be negative"))
	}
	if f.DatabaseURL == "" {
		return errs
	}
	if adminToken == "" {
		errs = append(errs, errors.New("admin-token: fleet mode (--database-url) needs --admin-token or KEYGATE_ADMIN_TOKEN, the same on every daemon"))
	}
	return errs
}

// defaultNode is the host name, ":" and the port of addr.
func defaultNode(addr string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "keygate"
	}
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return host + ":" + port
	}
	return host
}

// redactURL returns u without its password, for the banner.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(database URL)"
	}
	return p.Redacted()
}

// daemonStore is what the daemon needs of its store, whichever backend.
type daemonStore interface {
	store.Store
	store.Health
	Retention() time.Duration
	SetRetention(time.Duration) error
}

// openStore opens the daemon's store: PostgreSQL when a database URL is
// configured (waiting up to DatabaseWait for an unreachable server), else
// the Badger directory.
func openStore(ctx context.Context, cfg Config, logger *slog.Logger) (daemonStore, error) {
	if cfg.DatabaseURL == "" {
		st, err := badgerstore.Open(badgerstore.DefaultOptions(cfg.Data).WithLogger(logger).WithNode(nodeName(cfg)).
			WithMinFreeSpace(cfg.MinFreeSpace).WithRetention(cfg.LogRetention).WithMaintenanceInterval(cfg.MaintenanceInterval))
		if err != nil {
			return nil, fmt.Errorf("opening the store in %s: %w", cfg.Data, err)
		}
		return st, nil
	}
	opts := postgres.DefaultOptions(cfg.DatabaseURL).WithNode(nodeName(cfg)).WithLogger(logger).
		WithSpool(cfgSpoolDir(cfg), cfg.SpoolMaxBytes).WithRetention(cfg.LogRetention)
	if cfg.MaintenanceInterval > 0 {
		opts = opts.WithMaintenanceInterval(cfg.MaintenanceInterval)
	}
	if err := os.MkdirAll(cfgSpoolDir(cfg), 0o700); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	return openPostgres(ctx, opts, cmp.Or(cfg.DatabaseWait, defaultDatabaseWait), logger)
}

func cfgSpoolDir(cfg Config) string { return filepath.Join(cfg.Data, spoolDir) }

func nodeName(cfg Config) string {
	if cfg.NodeName != "" {
		return cfg.NodeName
	}
	return defaultNode(cmp.Or(cfg.Addr, server.DefaultAddr))
}

// openPostgres opens the PostgreSQL store, trying again every second for
// up to wait while the server is unreachable (a daemon started with its
// database, or during a restart of it). Any other failure (a bad URL, a
// wrong password, a missing database) is final at once: waiting would not
// fix it. Errors are one line and never contain the password.
func openPostgres(ctx context.Context, opts postgres.Options, wait time.Duration, logger *slog.Logger) (daemonStore, error) {
	deadline := time.Now().Add(wait)
	for attempt := 1; ; attempt++ {
		st, err := postgres.Open(ctx, opts)
		if err == nil {
			if attempt > 1 {
				logger.Info("database reachable; starting", "attempts", attempt)
			}
			return st, nil
		}
		if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			return nil, fmt.Errorf("opening the database: %w", err)
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("opening the database: gave up after %s (--database-wait): %w", wait, err)
		}
		if attempt == 1 {
			logger.Warn("database unreachable; retrying every second", "for", wait.String(), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("opening the database: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
