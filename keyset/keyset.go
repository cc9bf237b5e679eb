// Package keyset owns keygate's live key set: the engine that checks run
// against, kept in step with a store. It loads every key at start, applies
// the store's change feed to the engine in sequence order, and is the only
// place that knows the commit-then-publish protocol a management write
// follows so that its answer is already true for the check path.
//
// Changes made by other writers arrive by polling (Follow) and, sooner,
// by a wake-up: Notify, or the store's own notifications when it is a
// store.Notifier (PostgreSQL's LISTEN/NOTIFY).
//
// keyset imports engine and the store contract, never a backend, and no
// HTTP: it is tested with a store alone.
package keyset

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// batch is how many changes one read of the change feed asks for.
const batch = 1000

// Set is the live key set over one store. It is safe for concurrent use:
// checks read the engine's current snapshot without locks, and writes and
// catch-ups are serialised so that the engine's sequence number only moves
// forward and never past a change it has not applied.
type Set struct {
	st   store.Keys
	eng  *engine.Engine
	mu   sync.Mutex // serialises Commit and CatchUp
	wake chan struct{}
	// synced is when the set last reflected every change the store had
	// (Unix nanoseconds): the load, then each catch-up that succeeded.
	synced atomic.Int64
	loaded LoadTimes
}

// LoadTimes is what Open's load took.
type LoadTimes struct {
	// Keys is the number of keys loaded.
	Keys int
	// Read is the store's LoadAll, Build compiling the keys into the
	// engine's first snapshot.
	Read, Build time.Duration
}

// Open loads every key of st into a new engine.
func Open(ctx context.Context, st store.Keys) (*Set, error) {
	began := time.Now()
	keys, seq, err := st.LoadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("keyset: loading keys: %w", err)
	}
	s := &Set{st: st, eng: engine.New(), wake: make(chan struct{}, 1)}
	s.loaded.Keys, s.loaded.Read = len(keys), time.Since(began)
	began = time.Now()
	s.eng.Load(keys, seq)
	s.loaded.Build = time.Since(began)
	s.synced.Store(time.Now().UnixNano())
	return s, nil
}

// Loaded returns what Open's load took.
func (s *Set) Loaded() LoadTimes { return s.loaded }

// Synced is when the set last reflected every change its store had: the
// load at Open, then the end of each CatchUp that succeeded (whether or
// not it brought changes). time.Since(Synced()) is how stale the set may
// be: about the poll interval while the store answers, growing while it
// does not.
func (s *Set) Synced() time.Time { return time.Unix(0, s.synced.Load()) }

// Snapshot returns the published key set. It is immutable.
func (s *Set) Snapshot() *engine.Snapshot { return s.eng.Snapshot() }

// Check decides one request against the published key set; see
// engine.Snapshot.Check. It does not allocate.
func (s *Set) Check(secret, scope []byte, addr netip.Addr, now time.Time) engine.Result {
	return s.eng.Check(secret, scope, addr, now)
}

// Seq is the sequence number of the last change the published set
// reflects.
func (s *Set) Seq() uint64 { return s.eng.Snapshot().Seq() }

// Commit runs one store write and publishes it before returning, so that
// the caller's answer is already true for the check path. Changes other
// writers committed in between are published with it, in order and in the
// same publication. If they cannot be read now, the change is published
// without moving the sequence number, so the next catch-up still fetches
// the gap, in order, and re-applies this change after it: a sequence
// number is never skipped. A write error is returned as it is and nothing
// is published.
func (s *Set) Commit(ctx context.Context, write func() (store.Change, error)) (store.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := write()
	if err != nil {
		return ch, err
	}
	cur := s.Seq()
	switch {
	case ch.Seq == 0 || ch.Seq == cur+1:
		s.apply([]store.Change{ch})
	case ch.Seq > cur+1:
		gap, err := s.st.Changes(ctx, cur, int(ch.Seq-cur))
		if err == nil && len(gap) == int(ch.Seq-cur) && gap[len(gap)-1].Seq == ch.Seq {
			s.apply(gap)
		} else if ch.After != nil {
			s.eng.Apply(0, []*engine.Key{ch.After}, hashesOf([]store.Change{ch}))
		}
	}
	return ch, nil
}

// CatchUp applies every change newer than the published sequence number,
// in order, and returns when the store has no more (or on the first
// error, with what was read before it applied).
func (s *Set) CatchUp(ctx context.Context) error {
	for {
		s.mu.Lock()
		changes, err := s.st.Changes(ctx, s.Seq(), batch)
		if err == nil {
			s.apply(changes)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if len(changes) < batch {
			s.synced.Store(time.Now().UnixNano())
			return nil
		}
	}
}

// Notify asks a running Follow to catch up now instead of at its next
// tick: a store that can announce commits (PostgreSQL's LISTEN/NOTIFY)
// calls it. It never blocks; notifications that arrive while one is
// pending are merged.
func (s *Set) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Follow catches up every interval, on each Notify, and on each of the
// store's notifications if it is a store.Notifier, until ctx is done,
// handing each failure to onErr (which may be nil).
func (s *Set) Follow(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var notified <-chan struct{}
	if n, ok := s.st.(store.Notifier); ok {
		notified = n.Notifications()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		case _, ok := <-notified:
			if !ok {
				notified = nil // closed: polling alone from now on
				continue
			}
		}
		if err := s.CatchUp(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
}

// apply publishes committed changes in one publication, so readers never
// see part of a batch. Changes must be in sequence order; those the engine
// already reflects are skipped. The sequence number moves to the last
// change applied. s.mu must be held.
//
// A rotation changes the hash a key is found under, so every hash a key of
// the batch had before or after any of its changes is removed and each
// key's last version put back: no secret a rotation retired survives.
func (s *Set) apply(changes []store.Change) {
	cur := s.Seq()
	var (
		seq     uint64
		fresh   []store.Change
		last    = make(map[string]int, len(changes))
		keyList []*engine.Key
	)
	for _, c := range changes {
		if c.After == nil || (c.Seq != 0 && c.Seq <= cur) {
			continue
		}
		fresh = append(fresh, c)
		seq = max(seq, c.Seq)
	}
	for i, c := range fresh {
		last[c.After.ID] = i
	}
	for i, c := range fresh {
		if last[c.After.ID] == i {
			keyList = append(keyList, c.After)
		}
	}
	if len(keyList) > 0 {
		s.eng.Apply(seq, keyList, hashesOf(fresh))
	}
}

// hashesOf lists every hash the keys of changes were found under, before
// and after.
func hashesOf(changes []store.Change) []engine.Hash {
	var hs []engine.Hash
	for _, c := range changes {
		for _, k := range [2]*engine.Key{c.Before, c.After} {
			if k != nil {
				hs = append(hs, k.Hashes()...)
			}
		}
	}
	return hs
}
