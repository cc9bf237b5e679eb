package server

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"

	"github.com/keygate/keygate/engine"
)

// fakeStore is an in-memory Store for the server's tests.
type fakeStore struct {
	mu      sync.Mutex
	keys    map[string]*engine.Key
	order   []string
	changes []store.Change
	// versions is each key's version: the seq of its last change.
	versions map[string]uint64
	// down makes every key method fail with store.ErrUnavailable, as a
	// database outage does.
	down bool
	logs []usagelog.Record
	// discardLogs makes AppendLog a no-op, for allocation tests.
	discardLogs bool
	// panicOnList makes ListKeys panic, to test recovery.
	panicOnList bool
	// failChanges makes the next that many Changes calls fail.
	failChanges int
	// health is what Health returns.
	health error
}

func (f *fakeStore) Health() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeStore) setHealth(err error) {
	f.mu.Lock()
	f.health = err
	f.mu.Unlock()
}

func newFakeStore() *fakeStore {
	return &fakeStore{keys: map[string]*engine.Key{}, versions: map[string]uint64{}}
}

func (f *fakeStore) record(k *engine.Key) store.Change {
	c := store.Change{Seq: uint64(len(f.changes) + 1), KeyID: k.ID, After: k.Clone()}
	c.Version = c.Seq
	f.versions[k.ID] = c.Version
	f.changes = append(f.changes, c)
	return c
}

var errFakeDown = fmt.Errorf("fake: %w: database unreachable", store.ErrUnavailable)

func (f *fakeStore) CreateKey(_ context.Context, k *engine.Key, _ string) (store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return store.Change{}, errFakeDown
	}
	if _, ok := f.keys[k.ID]; ok {
		return store.Change{}, fmt.Errorf("fake: %w", store.ErrExists)
	}
	f.keys[k.ID] = k.Clone()
	f.order = append(f.order, k.ID)
	return f.record(k), nil
}

func (f *fakeStore) UpdateKey(ctx context.Context, id, actor, action string, fn func(*engine.Key) error) (store.Change, error) {
	return f.UpdateKeyIf(ctx, id, 0, actor, action, fn)
}

func (f *fakeStore) UpdateKeyIf(_ context.Context, id string, version uint64, _, _ string, fn func(*engine.Key) error) (store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return store.Change{}, errFakeDown
	}
	k, ok := f.keys[id]
	if !ok {
		return store.Change{}, fmt.Errorf("fake: key %s: %w", id, store.ErrNotFound)
	}
	if version != 0 && version != f.versions[id] {
		return store.Change{}, fmt.Errorf("fake: key %s: %w", id, store.ErrPrecondition)
	}
	c := k.Clone()
	if err := fn(c); err != nil {
		return store.Change{}, err
	}
	if c.ID != k.ID || c.Hash != k.Hash && c.PrevHash != k.Hash {
		return store.Change{}, store.ErrImmutable
	}
	f.keys[id] = c
	ch := f.record(c)
	ch.Before = k.Clone()
	f.changes[len(f.changes)-1].Before = ch.Before
	return ch, nil
}

func (f *fakeStore) GetKey(ctx context.Context, id string) (*engine.Key, error) {
	k, _, err := f.GetKeyVersion(ctx, id)
	return k, err
}

func (f *fakeStore) GetKeyVersion(_ context.Context, id string) (*engine.Key, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, 0, errFakeDown
	}
	k, ok := f.keys[id]
	if !ok {
		return nil, 0, fmt.Errorf("fake: key %s: %w", id, store.ErrNotFound)
	}
	return k.Clone(), f.versions[id], nil
}

func (f *fakeStore) ListKeys(context.Context) ([]*engine.Key, error) {
	if f.panicOnList {
		panic("fake: ListKeys panics")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*engine.Key, 0, len(f.order))
	for _, id := range f.order {
		out = append(out, f.keys[id].Clone())
	}
	return out, nil
}

func (f *fakeStore) LoadAll(ctx context.Context) ([]*engine.Key, uint64, error) {
	keys, _ := f.ListKeys(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	return keys, uint64(len(f.changes)), nil
}

func (f *fakeStore) Audit(_ context.Context, q store.AuditQuery) ([]store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []store.Change{}
	for i := len(f.changes) - 1; i >= 0 && len(out) < q.PageLimit(); i-- {
		c := f.changes[i]
		if (q.Before == 0 || c.Seq < q.Before) && q.Match(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeStore) Changes(_ context.Context, since uint64, limit int) ([]store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failChanges > 0 {
		f.failChanges--
		return nil, fmt.Errorf("fake: %w: transient read error", store.ErrUnavailable)
	}
	if since >= uint64(len(f.changes)) {
		return nil, nil
	}
	out := f.changes[since:]
	if len(out) > limit {
		out = out[:limit]
	}
	return slices.Clone(out), nil
}

func (f *fakeStore) AppendLog(e *usagelog.Entry) {
	if f.discardLogs {
		return
	}
	r := usagelog.Record{Time: e.Time, KeyID: e.KeyID, Method: string(e.Method), Path: string(e.Path),
		Status: e.Status, Code: e.Code, EntryID: e.EntryID, LatencyUS: e.Latency.Microseconds(),
		SecretHint: e.Hint, ReportOnly: usagelog.IsReportOnly(e.Status, e.Code)}
	if e.IP.IsValid() {
		r.IP = e.IP.String()
	}
	f.mu.Lock()
	f.logs = append(f.logs, r)
	f.mu.Unlock()
}

func (f *fakeStore) match(r usagelog.Record, q usagelog.Filter) bool {
	switch {
	case q.KeyID != "" && r.KeyID != q.KeyID,
		q.Method != "" && !strings.EqualFold(r.Method, q.Method),
		!q.From.IsZero() && r.Time.Before(q.From),
		!q.To.IsZero() && !r.Time.Before(q.To),
		q.Code != "" && r.Code != strings.TrimSuffix(q.Code, "none"),
		q.IP != "" && r.IP != netip.MustParseAddr(q.IP).Unmap().String(),
		!strings.HasPrefix(r.Path, q.PathPrefix):
		return false
	case q.Status != "":
		s := strconv.Itoa(r.Status)
		if strings.HasSuffix(q.Status, "xx") {
			return s[0] == q.Status[0]
		}
		return s == q.Status
	}
	return true
}

func (f *fakeStore) QueryLogs(_ context.Context, q usagelog.Filter) (usagelog.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	start := len(f.logs) - 1
	if q.Cursor != "" {
		n, err := strconv.Atoi(q.Cursor)
		if err != nil {
			return usagelog.Page{}, usagelog.BadCursor()
		}
		start = n
	}
	var p usagelog.Page
	for i := start; i >= 0; i-- {
		if !f.match(f.logs[i], q) {
			continue
		}
		if len(p.Items) == limit {
			p.NextCursor = strconv.Itoa(i)
			break
		}
		p.Items = append(p.Items, f.logs[i])
	}
	return p, nil
}

func (f *fakeStore) ExportCSV(_ context.Context, w io.Writer, q usagelog.Filter, names usagelog.KeyNames) (int, error) {
	f.mu.Lock()
	logs := slices.Clone(f.logs)
	f.mu.Unlock()
	cw := usagelog.NewCSVWriter(w, names)
	for i := len(logs) - 1; i >= 0; i-- {
		if f.match(logs[i], q) {
			if err := cw.WriteRecord(&logs[i]); err != nil {
				return cw.Rows(), err
			}
		}
	}
	return cw.Rows(), cw.Flush()
}

func (f *fakeStore) LogStats() usagelog.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return usagelog.Stats{Written: uint64(len(f.logs))}
}

func (f *fakeStore) LastUsed(string) time.Time { return time.Time{} }

func (f *fakeStore) FlushLogs() error { return nil }

func (f *fakeStore) EntryHits(_ context.Context, keyID string, since time.Time) (map[string]usagelog.Hits, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]usagelog.Hits{}
	for _, r := range f.logs {
		if r.KeyID == keyID && !r.Time.Before(since) && r.EntryID != "" {
			h := out[r.EntryID]
			h.Count++
			if r.Time.After(h.LastSeen) {
				h.LastSeen = r.Time
			}
			out[r.EntryID] = h
		}
	}
	return out, nil
}

func (f *fakeStore) Traffic(_ context.Context, keyID string, since time.Time, limit int) ([]usagelog.AddrStat, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []usagelog.AddrStat
	at := map[netip.Addr]int{}
	truncated := false
	for i := len(f.logs) - 1; i >= 0; i-- {
		r := f.logs[i]
		ip, err := netip.ParseAddr(r.IP)
		if r.KeyID != keyID || r.Time.Before(since) || err != nil || !usagelog.CountsForAllowlist(r.Code) {
			continue
		}
		var kept bool
		out, kept = usagelog.AddTraffic(out, at, limit, ip, r.Time, r.Status, r.Code, []byte(r.EntryID))
		truncated = truncated || !kept
	}
	return out, truncated, nil
}

func (f *fakeStore) Close() error { return nil }

var _ store.Store = (*fakeStore)(nil)

func (f *fakeStore) logCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.logs)
}

type engineKey = engine.Key

func sleepMS(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }

func (f *fakeStore) LogBuckets(_ context.Context, q usagelog.BucketQuery) ([]usagelog.Bucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := q.NewBuckets()
	for _, r := range f.logs {
		if q.KeyID != "" && r.KeyID != q.KeyID {
			continue
		}
		if i := q.Index(r.Time.UnixNano()); i >= 0 {
			out[i].Add(r.Status, r.Code, 1)
		}
	}
	return out, nil
}
