package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// ErrForeignHistory: Import found changes in the database that are not the
// source's (a fleet already ran on it, or another directory was imported).
var ErrForeignHistory = errors.New("store: the database has changes that are not the source's")

// Imported is what one Import wrote.
type Imported struct {
	// Changes is the number of audit-trail changes copied; Keys the keys
	// written (created or brought up to date), Entries their allowlist
	// entries; Already the changes the database had from an earlier run.
	Changes, Keys, Entries, Already int
}

// Import copies another store's history into this database, keeping its
// numbers: changes (the audit trail, oldest first, numbered 1, 2, 3 ...
// without a gap, as a Changes walk from 0 returns them) and the keys as
// they stand after the last one (LoadAll), hashes only, allowlist entries
// with their ids. It is idempotent: the database may already hold a prefix
// of the same changes (an earlier Import), and only the rest is written;
// a second Import of the same source writes nothing. Anything else in the
// database's feed is refused with ErrForeignHistory, before anything is
// written. It all happens in one transaction holding the feed row, so
// daemons running on the database meanwhile wait, then see the imported
// keys as changes (a NOTIFY is sent).
func (s *Store) Import(ctx context.Context, keys []*engine.Key, changes []store.Change) (Imported, error) {
	var out Imported
	for i, c := range changes {
		if c.Seq != uint64(i+1) {
			return out, fmt.Errorf("store: import: change %d has number %d: the source's feed must start at 1 without gaps", i+1, c.Seq)
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = Imported{}
		var have int64
		if err := tx.QueryRow(ctx, "SELECT seq FROM feed FOR UPDATE").Scan(&have); err != nil {
			return err
		}
		if have > int64(len(changes)) {
			return fmt.Errorf("%w: it has %d changes, the source %d: import into an empty database", ErrForeignHistory, have, len(changes))
		}
		if err := sameHistory(ctx, tx, changes[:have]); err != nil {
			return err
		}
		out.Already = int(have)
		last := map[string]uint64{} // key -> seq of its last change
		for _, c := range changes {
			last[c.KeyID] = c.Seq
		}
		for _, c := range changes[have:] {
			bj, err := encodeKeyJSON(c.Before)
			if err != nil {
				return err
			}
			aj, err := encodeKeyJSON(c.After)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO changes (seq, time_ns, actor, action, key_id, before, after)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, int64(c.Seq), c.Time.UnixNano(), c.Actor, c.Action, c.KeyID, bj, aj); err != nil {
				return err
			}
			out.Changes++
		}
		for _, k := range keys {
			v, ok := last[k.ID]
			if !ok {
				return fmt.Errorf("store: import: key %s has no change in the source's audit trail", k.ID)
			}
			if v <= uint64(have) {
				continue // imported by an earlier run, unchanged since
			}
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM keys WHERE id = $1)", k.ID).Scan(&exists); err != nil {
				return err
			}
			if err := writeKey(ctx, tx, k, int64(v), !exists); err != nil {
				return err
			}
			out.Keys++
			out.Entries += len(k.Allowlist)
		}
		if out.Changes == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, "UPDATE feed SET seq = $1", int64(len(changes))); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, strconv.Itoa(len(changes)))
		return err
	})
	if err != nil {
		if errors.Is(err, ErrForeignHistory) {
			return Imported{}, err
		}
		return Imported{}, fmt.Errorf("store: import not applied: %w", s.wrap(err))
	}
	return out, nil
}

// sameHistory checks that the database's first changes are want.
func sameHistory(ctx context.Context, tx pgx.Tx, want []store.Change) error {
	if len(want) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, "SELECT seq, time_ns, action, key_id FROM changes WHERE seq <= $1 ORDER BY seq", len(want))
	if err != nil {
		return err
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var seq, ns int64
		var action, id string
		if err := rows.Scan(&seq, &ns, &action, &id); err != nil {
			return err
		}
		w := want[i]
		if uint64(seq) != w.Seq || ns != w.Time.UnixNano() || action != w.Action || id != w.KeyID {
			return fmt.Errorf("%w: change %d is %s of %s there, %s of %s in the source", ErrForeignHistory, seq, action, id, w.Action, w.KeyID)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if i != len(want) {
		return fmt.Errorf("%w: its audit trail has %d of its %d changes", store.ErrCorrupt, i, len(want))
	}
	return nil
}

// HasLogsFrom reports whether the usage log holds a record of node (keygate
// migrate --logs copies a directory's records once).
func (s *Store) HasLogsFrom(ctx context.Context, node string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM usage_log WHERE node = $1)", node).Scan(&ok); err != nil {
		return false, s.readErr(err)
	}
	return ok, nil
}
