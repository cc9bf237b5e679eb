package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/store"
)

// storeAdapter makes a *store.Store a server.Store: it converts the few
// types the two packages declare separately and translates the store's
// sentinel errors into the server's, so that the server answers with the
// right status.
type storeAdapter struct{ s *store.Store }

var _ server.Store = storeAdapter{}

func mapErr(err error) error {
	var fe *store.FilterError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", server.ErrNotFound, err)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("%w: %w", server.ErrConflict, err)
	case errors.Is(err, store.ErrImmutable):
		return fmt.Errorf("%w: %w", server.ErrInvalid, err)
	case errors.As(err, &fe), errors.Is(err, store.ErrBadFilter):
		return fmt.Errorf("%w: %w", server.ErrBadRequest, err)
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrNoSpace):
		return fmt.Errorf("%w: %w", server.ErrUnavailable, err)
	}
	return err
}

func change(c store.Change) server.Change {
	return server.Change{Seq: c.Seq, After: c.After}
}

func (a storeAdapter) CreateKey(ctx context.Context, k *engine.Key, actor string) (server.Change, error) {
	c, err := a.s.CreateKey(ctx, k, actor)
	return change(c), mapErr(err)
}

func (a storeAdapter) UpdateKey(ctx context.Context, id, actor, action string, fn func(*engine.Key) error) (server.Change, error) {
	var fnErr error
	c, err := a.s.UpdateKeyAction(ctx, id, actor, action, func(k *engine.Key) error {
		fnErr = fn(k)
		return fnErr
	})
	if err != nil && fnErr != nil && errors.Is(err, fnErr) {
		// fn's own error goes back unchanged: it already says what is wrong.
		return server.Change{}, fnErr
	}
	return change(c), mapErr(err)
}

func (a storeAdapter) GetKey(ctx context.Context, id string) (*engine.Key, error) {
	k, err := a.s.GetKey(ctx, id)
	return k, mapErr(err)
}

func (a storeAdapter) ListKeys(ctx context.Context) ([]*engine.Key, error) {
	ks, err := a.s.ListKeys(ctx)
	return ks, mapErr(err)
}

func (a storeAdapter) LoadAll(ctx context.Context) ([]*engine.Key, uint64, error) {
	ks, seq, err := a.s.LoadAll(ctx)
	return ks, seq, mapErr(err)
}

func (a storeAdapter) Changes(ctx context.Context, since uint64, limit int) ([]server.Change, error) {
	cs, err := a.s.Changes(ctx, since, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]server.Change, len(cs))
	for i, c := range cs {
		out[i] = change(c)
	}
	return out, nil
}

// AppendLog hands the entry over as it is: the two LogEntry types are
// identical, so a field added to one and not the other stops this compiling.
func (a storeAdapter) AppendLog(e *server.LogEntry) { a.s.AppendLog((*store.LogEntry)(e)) }

func (a storeAdapter) QueryLogs(ctx context.Context, f server.LogFilter) (server.LogPage, error) {
	p, err := a.s.QueryLogs(ctx, store.LogFilter(f))
	if err != nil {
		return server.LogPage{}, mapErr(err)
	}
	out := server.LogPage{Items: make([]server.LogRecord, len(p.Items)), NextCursor: p.NextCursor}
	for i, r := range p.Items {
		out.Items[i] = server.LogRecord(r)
	}
	return out, nil
}

func (a storeAdapter) ExportCSV(ctx context.Context, w io.Writer, f server.LogFilter) (int, error) {
	n, err := a.s.ExportCSV(ctx, w, store.LogFilter(f))
	return n, mapErr(err)
}

func (a storeAdapter) LogStats() server.LogStats {
	s := a.s.LogStats()
	return server.LogStats{Queued: s.Queued, Dropped: s.Dropped, Written: s.Written, WriteErrors: s.WriteErrors}
}

func (a storeAdapter) LastUsed(keyID string) time.Time { return a.s.LastUsed(keyID) }
