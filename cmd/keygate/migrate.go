package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/keygate/keygate/store"
	badgerstore "github.com/keygate/keygate/store/badger"
	"github.com/keygate/keygate/store/postgres"
	"github.com/keygate/keygate/usagelog"
)

// migrateCmd copies a Badger data directory into a PostgreSQL database for
// fleet mode: keys (hashes only), allowlists with their entry ids and the
// audit trail with its numbers, and with --logs the usage log. It runs
// with the daemon stopped (the daemon holds the directory's lock) and is
// idempotent: a second run writes nothing and says so.
func migrateCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var (
		data  = fs.String("data", "./data", "the Badger data directory to copy from (the daemon must be stopped)")
		dbURL = fs.String("database-url", "", "the PostgreSQL database to copy into (postgres://user:password@host:port/db)")
		logs  = fs.Bool("logs", false, "copy the usage log too (once: a second run skips it)")
		node  = fs.String("node-name", "", "node name of the copied usage-log records (default: host name:8080)")
	)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("migrate: unexpected argument %q", fs.Arg(0))
	}
	if *dbURL == "" {
		return usagef("migrate: --database-url is required (postgres://user:password@host:port/database)")
	}
	nodeName := *node
	if nodeName == "" {
		nodeName = defaultNode("127.0.0.1:8080")
	}
	ctx := context.Background()
	src, err := badgerstore.Open(badgerstore.DefaultOptions(*data).WithNode(nodeName))
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("migrate: %s is in use by a running keygate: stop it first (the copy must see every change)", *data)
	}
	if err != nil {
		return fmt.Errorf("migrate: opening %s: %w", *data, err)
	}
	defer src.Close()
	keys, _, err := src.LoadAll(ctx)
	if err != nil {
		return fmt.Errorf("migrate: reading keys: %w", err)
	}
	var changes []store.Change
	for {
		cs, err := src.Changes(ctx, uint64(len(changes)), 1000)
		if err != nil {
			return fmt.Errorf("migrate: reading the audit trail: %w", err)
		}
		changes = append(changes, cs...)
		if len(cs) < 1000 {
			break
		}
	}
	dst, err := postgres.Open(ctx, postgres.DefaultOptions(*dbURL).WithNode(nodeName))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()
	res, err := dst.Import(ctx, keys, changes)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	where := redactURL(*dbURL)
	if res.Changes == 0 {
		fmt.Fprintf(stdout, "keys: nothing to copy: %s already holds all %d changes of %s (%d keys)\n", where, res.Already, *data, len(keys))
	} else {
		fmt.Fprintf(stdout, "keys: copied %d keys (%d allowlist entries) and %d audit-trail changes from %s to %s", res.Keys, res.Entries, res.Changes, *data, where)
		if res.Already > 0 {
			fmt.Fprintf(stdout, " (%d changes were already there)", res.Already)
		}
		fmt.Fprintln(stdout)
	}
	if !*logs {
		return nil
	}
	return migrateLogs(ctx, src, dst, nodeName, stdout)
}

// migrateLogs copies every usage-log record of src into dst, oldest first,
// unless dst already has records of node (an earlier run). The records are
// read into memory first (a query walks newest first).
func migrateLogs(ctx context.Context, src store.Store, dst *postgres.Store, node string, stdout io.Writer) error {
	done, err := dst.HasLogsFrom(ctx, node)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if done {
		fmt.Fprintf(stdout, "usage log: nothing to copy: the database already has records of node %s (an earlier migrate --logs)\n", node)
		return nil
	}
	var recs []usagelog.Record
	f := usagelog.Filter{Limit: usagelog.MaxLimit}
	for {
		p, err := src.QueryLogs(ctx, f)
		if err != nil {
			return fmt.Errorf("migrate: reading the usage log: %w", err)
		}
		recs = append(recs, p.Items...)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	slices.Reverse(recs)
	for i := range recs {
		r := &recs[i]
		ip, _ := netip.ParseAddr(r.IP)
		dst.AppendLog(&usagelog.Entry{Time: r.Time, KeyID: r.KeyID, EntryID: r.EntryID, IP: ip,
			Method: []byte(r.Method), Path: []byte(r.Path), Status: r.Status, Code: r.Code,
			Latency: time.Duration(r.LatencyUS) * time.Microsecond})
		if (i+1)%(postgres.DefaultLogBuffer/2) == 0 {
			if err := dst.FlushLogs(); err != nil {
				return fmt.Errorf("migrate: writing the usage log: %w", err)
			}
		}
	}
	if err := dst.FlushLogs(); err != nil {
		return fmt.Errorf("migrate: writing the usage log: %w", err)
	}
	st := dst.LogStats()
	fmt.Fprintf(stdout, "usage log: copied %d records as node %s (%d dropped)\n", st.Written, node, st.Dropped)
	if st.Dropped > 0 || st.WriteErrors > 0 {
		return fmt.Errorf("migrate: %d usage-log records were not copied", st.Dropped+st.WriteErrors)
	}
	return nil
}
