package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// NotifyChannel is the channel every committed change is announced on,
// with its number as the payload.
const NotifyChannel = "keygate_changes"

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// CreateKey stores a new key, which must have an ID and a Hash, and
// records the change as "key.create". It fails with store.ErrExists if the
// ID (or the hash) is taken. The store does not retain k.
func (s *Store) CreateKey(ctx context.Context, k *engine.Key, actor string) (store.Change, error) {
	if err := s.usable(ctx); err != nil {
		return store.Change{}, err
	}
	if k == nil || k.ID == "" || k.Hash == (engine.Hash{}) {
		return store.Change{}, errors.New("store: a new key needs an id and a hash")
	}
	return s.commit(ctx, store.ActionCreate, actor, k.ID, func(tx pgx.Tx) (*engine.Key, *engine.Key, error) {
		return nil, k.Clone(), nil
	})
}

// UpdateKey reads key id, calls fn on a copy, writes the copy back and
// records the change under action ("" is store.ActionUpdate); the last
// write wins. fn may change any field except ID and Hash
// (store.ErrImmutable). If fn returns an error, nothing is written and
// that error is returned unchanged. fn runs inside the transaction with
// the key's row locked: it must not call the store.
func (s *Store) UpdateKey(ctx context.Context, id, actor, action string, fn func(k *engine.Key) error) (store.Change, error) {
	return s.UpdateKeyIf(ctx, id, 0, actor, action, fn)
}

// UpdateKeyIf is UpdateKey that applies only if the key's version is still
// version (from GetKeyVersion, the ETag of If-Match); otherwise it fails
// with an error wrapping store.ErrPrecondition and writes nothing. Version
// 0 means any version.
func (s *Store) UpdateKeyIf(ctx context.Context, id string, version uint64, actor, action string, fn func(k *engine.Key) error) (store.Change, error) {
	if action == "" {
		action = store.ActionUpdate
	}
	if err := s.usable(ctx); err != nil {
		return store.Change{}, err
	}
	return s.commit(ctx, action, actor, id, func(tx pgx.Tx) (*engine.Key, *engine.Key, error) {
		before, v, err := getKey(ctx, tx, id, true)
		if err != nil {
			return nil, nil, err
		}
		if version != 0 && uint64(v) != version {
			return nil, nil, fmt.Errorf("%w: key %s is at version %d, not %d", store.ErrPrecondition, id, v, version)
		}
		after := before.Clone()
		if err := fn(after); err != nil {
			return nil, nil, err
		}
		if after.ID != before.ID || after.Hash != before.Hash && after.PrevHash != before.Hash {
			return nil, nil, store.ErrImmutable
		}
		return before, after, nil
	})
}

// errFn marks an error of the caller's function, returned unchanged.
type errFn struct{ err error }

func (e errFn) Error() string { return e.err.Error() }

// commit runs one key change in one transaction: change reads the key
// (locking its row) and decides before and after; commit then takes the
// next number from the feed row (whose lock it holds until COMMIT, so
// changes commit in number order), writes the key, its entries and its
// Change, and notifies. Errors of change are returned as they are.
func (s *Store) commit(ctx context.Context, action, actor, id string,
	change func(pgx.Tx) (before, after *engine.Key, err error)) (store.Change, error) {
	var c store.Change
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		before, after, err := change(tx)
		if err != nil {
			return errFn{err}
		}
		c = store.Change{Time: time.Now().UTC(), Actor: actor, Action: action, KeyID: id, Before: before, After: after}
		if err := tx.QueryRow(ctx, "UPDATE feed SET seq = seq + 1 RETURNING seq").Scan(&c.Seq); err != nil {
			return err
		}
		c.Version = c.Seq
		if err := writeKey(ctx, tx, after, int64(c.Version), before == nil); err != nil {
			return err
		}
		bj, err := encodeKeyJSON(before)
		if err != nil {
			return err
		}
		aj, err := encodeKeyJSON(after)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO changes (seq, time_ns, actor, action, key_id, before, after)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, int64(c.Seq), c.Time.UnixNano(), actor, action, id, bj, aj); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, strconv.FormatUint(c.Seq, 10)); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			s.beforeCommit()
		}
		return nil
	})
	if err != nil {
		var fe errFn
		if errors.As(err, &fe) {
			return store.Change{}, fe.err
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
			return store.Change{}, fmt.Errorf("%w: %s", store.ErrExists, id)
		}
		if s.closed.Load() {
			return store.Change{}, store.ErrClosed
		}
		return store.Change{}, fmt.Errorf("store: key change not applied: %w", s.wrap(err))
	}
	s.setUp(true, nil)
	// The Change's keys are the caller's.
	if c.Before != nil {
		c.Before = c.Before.Clone()
	}
	c.After = c.After.Clone()
	return c, nil
}

func nsOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func timeOfNS(ns *int64) time.Time {
	if ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns).UTC()
}

// writeKey inserts (create) or updates the key row and replaces its
// entries.
func writeKey(ctx context.Context, tx pgx.Tx, k *engine.Key, version int64, create bool) error {
	var prev []byte
	if k.HasPrev() {
		prev = k.PrevHash[:]
	}
	args := []any{k.ID, k.Hash[:], k.Hint, k.Name, k.Description, scopesOf(k),
		nsOrNil(k.CreatedAt), nsOrNil(k.ExpiresAt), nsOrNil(k.RevokedAt), k.ReportOnly, version,
		prev, k.PrevHint, nsOrNil(k.PrevExpiresAt)}
	if create {
		if _, err := tx.Exec(ctx, `INSERT INTO keys (id, hash, hint, name, description, scopes, created_ns, expires_ns, revoked_ns, report_only, version,
			prev_hash, prev_hint, prev_expires_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, args...); err != nil {
			return err
		}
	} else {
		if _, err := tx.Exec(ctx, `UPDATE keys SET hash = $2, hint = $3, name = $4, description = $5, scopes = $6,
			created_ns = $7, expires_ns = $8, revoked_ns = $9, report_only = $10, version = $11,
			prev_hash = $12, prev_hint = $13, prev_expires_ns = $14 WHERE id = $1`, args...); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM entries WHERE key_id = $1", k.ID); err != nil {
			return err
		}
	}
	if len(k.Allowlist) == 0 {
		return nil
	}
	rows := make([][]any, len(k.Allowlist))
	for i, e := range k.Allowlist {
		rows[i] = []any{k.ID, i, e.ID, e.Prefix, e.Label, nsOrNil(e.ExpiresAt), e.Disabled}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"entries"},
		[]string{"key_id", "pos", "id", "prefix", "label", "expires_ns", "disabled"}, pgx.CopyFromRows(rows))
	return err
}

func scopesOf(k *engine.Key) []string {
	if k.Scopes == nil {
		return []string{}
	}
	return k.Scopes
}

const keyColumns = "id, hash, hint, name, description, scopes, created_ns, expires_ns, revoked_ns, report_only, version, prev_hash, prev_hint, prev_expires_ns"

func scanKey(row pgx.Row) (*engine.Key, int64, error) {
	var (
		k                 engine.Key
		hash              []byte
		scopes            []string
		created, exp, rev *int64
		version           int64
		prev              []byte
		prevExp           *int64
	)
	if err := row.Scan(&k.ID, &hash, &k.Hint, &k.Name, &k.Description, &scopes, &created, &exp, &rev, &k.ReportOnly, &version,
		&prev, &k.PrevHint, &prevExp); err != nil {
		return nil, 0, err
	}
	if len(hash) != len(k.Hash) || prev != nil && len(prev) != len(k.PrevHash) {
		return nil, 0, fmt.Errorf("%w: key %s: hash of %d bytes", store.ErrCorrupt, k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	copy(k.PrevHash[:], prev)
	k.PrevExpiresAt = timeOfNS(prevExp)
	if len(scopes) > 0 {
		k.Scopes = scopes
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = timeOfNS(created), timeOfNS(exp), timeOfNS(rev)
	return &k, version, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// getKey reads one key with its entries; forUpdate locks its row.
func getKey(ctx context.Context, q querier, id string, forUpdate bool) (*engine.Key, int64, error) {
	sql := "SELECT " + keyColumns + " FROM keys WHERE id = $1"
	if forUpdate {
		sql += " FOR UPDATE"
	}
	k, v, err := scanKey(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, fmt.Errorf("%w: %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, err
	}
	rows, err := q.Query(ctx, "SELECT key_id, id, prefix, label, expires_ns, disabled FROM entries WHERE key_id = $1 ORDER BY pos", id)
	if err != nil {
		return nil, 0, err
	}
	err = scanEntries(rows, func(string) *engine.Key { return k })
	return k, v, err
}

func scanEntries(rows pgx.Rows, keyOf func(id string) *engine.Key) error {
	defer rows.Close()
	for rows.Next() {
		var (
			keyID string
			e     engine.Entry
			exp   *int64
		)
		if err := rows.Scan(&keyID, &e.ID, &e.Prefix, &e.Label, &exp, &e.Disabled); err != nil {
			return err
		}
		e.ExpiresAt = timeOfNS(exp)
		if k := keyOf(keyID); k != nil {
			k.Allowlist = append(k.Allowlist, e)
		}
	}
	return rows.Err()
}

// GetKey returns the key with the given id, or store.ErrNotFound. The key
// belongs to the caller.
func (s *Store) GetKey(ctx context.Context, id string) (*engine.Key, error) {
	k, _, err := s.GetKeyVersion(ctx, id)
	return k, err
}

// GetKeyVersion is GetKey also returning the key's version (its ETag): the
// number of its last change.
func (s *Store) GetKeyVersion(ctx context.Context, id string) (*engine.Key, uint64, error) {
	if err := s.usable(ctx); err != nil {
		return nil, 0, err
	}
	var k *engine.Key
	var v int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) (err error) {
		k, v, err = getKey(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return nil, 0, s.readErr(err)
	}
	return k, uint64(v), nil
}

func (s *Store) readErr(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	return fmt.Errorf("store: %w", s.wrap(err))
}

// ListKeys returns every key, revoked ones included, ordered by CreatedAt,
// then ID. The keys belong to the caller.
func (s *Store) ListKeys(ctx context.Context) ([]*engine.Key, error) {
	keys, _, err := s.loadAll(ctx, " ORDER BY created_ns NULLS FIRST, id")
	return keys, err
}

// LoadAll returns every key (revoked included), in no particular order,
// and the change number they reflect, read in one consistent snapshot.
// The keys belong to the caller.
func (s *Store) LoadAll(ctx context.Context) ([]*engine.Key, uint64, error) {
	return s.loadAll(ctx, "")
}

func (s *Store) loadAll(ctx context.Context, order string) ([]*engine.Key, uint64, error) {
	if err := s.usable(ctx); err != nil {
		return nil, 0, err
	}
	var keys []*engine.Key
	var seq int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		keys = nil
		if err := tx.QueryRow(ctx, "SELECT seq FROM feed").Scan(&seq); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+keyColumns+" FROM keys"+order)
		if err != nil {
			return err
		}
		byID := make(map[string]*engine.Key)
		for rows.Next() {
			k, _, err := scanKey(rows)
			if err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
			byID[k.ID] = k
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, "SELECT key_id, id, prefix, label, expires_ns, disabled FROM entries ORDER BY key_id, pos")
		if err != nil {
			return err
		}
		return scanEntries(rows, func(id string) *engine.Key { return byID[id] })
	})
	if err != nil {
		return nil, 0, s.readErr(err)
	}
	return keys, uint64(seq), nil
}

// Seq returns the number of the last committed change fleet-wide.
func (s *Store) Seq(ctx context.Context) (uint64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, "SELECT seq FROM feed").Scan(&seq); err != nil {
		return 0, s.readErr(err)
	}
	return uint64(seq), nil
}

// Changes returns up to limit changes with Seq > since, oldest first.
// limit <= 0 means 1000. Followed from any number, it never skips one.
func (s *Store) Changes(ctx context.Context, since uint64, limit int) ([]store.Change, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, time_ns, actor, action, key_id, before, after
		FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(since), limit)
	if err != nil {
		return nil, s.readErr(err)
	}
	out, err := s.scanChanges(rows, nil)
	if err != nil {
		return nil, err
	}
	s.setUp(true, nil)
	return out, nil
}

// Audit returns up to q.PageLimit() changes with Seq below q.Before (all
// when 0), newest first, of key q.KeyID (any when "") made in [q.From,
// q.To): the store contract's audit trail, from the changes table that
// Changes reads.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) ([]store.Change, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	var w query
	if q.Before > 0 {
		w.add("seq < ?", int64(min(q.Before, 1<<62)))
	}
	if q.KeyID != "" {
		w.add("key_id = ?", q.KeyID)
	}
	if !q.From.IsZero() {
		w.add("time_ns >= ?", q.From.UnixNano())
	}
	if !q.To.IsZero() {
		w.add("time_ns < ?", q.To.UnixNano())
	}
	sql := "SELECT seq, time_ns, actor, action, key_id, before, after FROM changes"
	if len(w.where) > 0 {
		sql += " WHERE " + strings.Join(w.where, " AND ")
	}
	sql += " ORDER BY seq DESC LIMIT " + strconv.Itoa(q.PageLimit())
	rows, err := s.pool.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, s.readErr(err)
	}
	return s.scanChanges(rows, []store.Change{})
}

// scanChanges reads rows of (seq, time_ns, actor, action, key_id, before,
// after) into out, and closes rows.
func (s *Store) scanChanges(rows pgx.Rows, out []store.Change) ([]store.Change, error) {
	defer rows.Close()
	for rows.Next() {
		var (
			c      store.Change
			seq    int64
			ns     int64
			bj, aj []byte
		)
		if err := rows.Scan(&seq, &ns, &c.Actor, &c.Action, &c.KeyID, &bj, &aj); err != nil {
			return nil, s.readErr(err)
		}
		c.Seq, c.Time = uint64(seq), time.Unix(0, ns).UTC()
		c.Version = c.Seq
		var err error
		if c.Before, err = decodeKeyJSON(bj); err != nil {
			return nil, err
		}
		if c.After, err = decodeKeyJSON(aj); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr(err)
	}
	return out, nil
}

// Listen calls fn with the number of every change committed fleet-wide,
// as PostgreSQL announces it (NOTIFY keygate_changes), on a dedicated
// connection that it re-opens with backoff when it breaks; after each
// (re)connection it calls fn with the current number, so that the caller
// catches up on what it may have missed. fn runs on Listen's goroutine.
// Listen returns when ctx is done or the store is closed. Notifications
// are a wake-up, not a feed: the caller reads Changes.
func (s *Store) Listen(ctx context.Context, fn func(seq uint64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		err := s.listenOnce(ctx, fn, &backoff)
		if ctx.Err() != nil {
			if s.closed.Load() {
				return store.ErrClosed
			}
			return ctx.Err()
		}
		s.wrap(err) // marks the store down if the database is unreachable
		s.log.Warn("store: change notifications interrupted; reconnecting", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			continue
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, fn func(uint64), backoff *time.Duration) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	var seq int64
	if err := conn.QueryRow(ctx, "SELECT seq FROM feed").Scan(&seq); err != nil {
		return err
	}
	*backoff = 100 * time.Millisecond
	s.setUp(true, nil)
	fn(uint64(seq))
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if v, err := strconv.ParseUint(n.Payload, 10, 64); err == nil {
			fn(v)
		}
	}
}

// jsonKey is the JSON form of a key in the audit trail (changes.before
// and .after): readable with SQL, and independent of Go's field order.
type jsonKey struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Scopes      []string    `json:"scopes,omitempty"`
	Hash        string      `json:"hash"`
	Hint        string      `json:"hint"`
	CreatedAt   *time.Time  `json:"created_at,omitempty"`
	ExpiresAt   *time.Time  `json:"expires_at,omitempty"`
	RevokedAt   *time.Time  `json:"revoked_at,omitempty"`
	ReportOnly  bool        `json:"report_only,omitempty"`
	Allowlist   []jsonEntry `json:"allowlist,omitempty"`
	// The previous secret after a rotation (schema 2).
	PrevHash      string     `json:"prev_hash,omitempty"`
	PrevHint      string     `json:"prev_hint,omitempty"`
	PrevExpiresAt *time.Time `json:"prev_expires_at,omitempty"`
}

type jsonEntry struct {
	ID        string       `json:"id"`
	Prefix    netip.Prefix `json:"prefix"`
	Label     string       `json:"label,omitempty"`
	ExpiresAt *time.Time   `json:"expires_at,omitempty"`
	Disabled  bool         `json:"disabled,omitempty"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func tv(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func encodeKeyJSON(k *engine.Key) ([]byte, error) {
	if k == nil {
		return nil, nil
	}
	j := jsonKey{ID: k.ID, Name: k.Name, Description: k.Description, Scopes: k.Scopes,
		Hash: hex.EncodeToString(k.Hash[:]), Hint: k.Hint, CreatedAt: tp(k.CreatedAt),
		ExpiresAt: tp(k.ExpiresAt), RevokedAt: tp(k.RevokedAt), ReportOnly: k.ReportOnly,
		PrevHint: k.PrevHint, PrevExpiresAt: tp(k.PrevExpiresAt)}
	if k.HasPrev() {
		j.PrevHash = hex.EncodeToString(k.PrevHash[:])
	}
	for _, e := range k.Allowlist {
		j.Allowlist = append(j.Allowlist, jsonEntry{ID: e.ID, Prefix: e.Prefix, Label: e.Label, ExpiresAt: tp(e.ExpiresAt), Disabled: e.Disabled})
	}
	return json.Marshal(j)
}

func decodeKeyJSON(b []byte) (*engine.Key, error) {
	if b == nil {
		return nil, nil
	}
	var j jsonKey
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: change: %v", store.ErrCorrupt, err)
	}
	k := &engine.Key{ID: j.ID, Name: j.Name, Description: j.Description, Scopes: j.Scopes, Hint: j.Hint,
		CreatedAt: tv(j.CreatedAt), ExpiresAt: tv(j.ExpiresAt), RevokedAt: tv(j.RevokedAt), ReportOnly: j.ReportOnly,
		PrevHint: j.PrevHint, PrevExpiresAt: tv(j.PrevExpiresAt)}
	if j.PrevHash != "" {
		if h, err := hex.DecodeString(j.PrevHash); err != nil || len(h) != len(k.PrevHash) {
			return nil, fmt.Errorf("%w: change: key %s: bad previous hash", store.ErrCorrupt, j.ID)
		} else {
			copy(k.PrevHash[:], h)
		}
	}
	if h, err := hex.DecodeString(j.Hash); err != nil || len(h) != len(k.Hash) {
		return nil, fmt.Errorf("%w: change: key %s: bad hash", store.ErrCorrupt, j.ID)
	} else {
		copy(k.Hash[:], h)
	}
	for _, e := range j.Allowlist {
		k.Allowlist = append(k.Allowlist, engine.Entry{ID: e.ID, Prefix: e.Prefix, Label: e.Label, ExpiresAt: tv(e.ExpiresAt), Disabled: e.Disabled})
	}
	return k, nil
}
