package postgres

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/pgtest"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

var (
	measureRecords = flag.Int("pg.records", 200_000, "records for the ingest/query/export measurements")
	measureBatch   = flag.Int("pg.batch", 0, "BatchRecords for the measurements (0: the default)")
)

var (
	testKeys    = []string{"key_a", "key_b", "key_c", ""}
	testMethods = []string{"GET", "POST", "get", "DELETE", "G\xffT"}
	testCodes   = []string{"", "IP_NOT_ALLOWED", "REVOKED"}
)

// randEntry makes a record at base + i ms (so times are distinct and
// ordered) with awkward paths for the CSV.
func randEntry(r *rand.Rand, base time.Time, i int) usagelog.Entry {
	paths := []string{"/v1/x", "/a,b", "=cmd", " lead", "/q\"x", "/" + strings.Repeat("p", 600), "/caf\xc3", "/\xe9\n"}
	e := usagelog.Entry{
		Time:    base.Add(time.Duration(i)*time.Millisecond + time.Duration(r.IntN(1000))),
		KeyID:   testKeys[r.IntN(len(testKeys))],
		EntryID: []string{"", "e1"}[r.IntN(2)],
		Method:  []byte(testMethods[r.IntN(len(testMethods))]),
		Path:    []byte(paths[r.IntN(len(paths))]),
		Status:  []int{200, 403, 404, 500}[r.IntN(4)],
		Code:    testCodes[r.IntN(len(testCodes))],
		Latency: time.Duration(r.IntN(5000)) * time.Microsecond,
		Hint:    []string{"", "kg_ab12", "kg_cd34"}[r.IntN(3)],
	}
	if r.IntN(4) > 0 {
		e.IP = netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(256)), byte(r.IntN(256))})
	}
	return e
}

// recordOf is what a query should return for e.
func recordOf(e usagelog.Entry) usagelog.Record {
	r := usagelog.Record{Time: time.Unix(0, e.Time.UnixNano()).UTC(), KeyID: e.KeyID, EntryID: e.EntryID,
		Method: string(e.Method), Path: string(e.Path[:min(len(e.Path), usagelog.MaxPath)]),
		Status: e.Status, Code: e.Code, LatencyUS: e.Latency.Microseconds(),
		SecretHint: e.Hint, ReportOnly: usagelog.IsReportOnly(e.Status, e.Code)}
	if e.IP.IsValid() {
		r.IP = e.IP.String()
	}
	return r
}

// bruteForce filters all (oldest first) and returns it newest first.
func bruteForce(all []usagelog.Record, f usagelog.Filter) []usagelog.Record {
	lo, hi, _ := usagelog.ParseStatusFilter(f.Status)
	var out []usagelog.Record
	for i := len(all) - 1; i >= 0; i-- {
		r := all[i]
		if f.KeyID != "" && r.KeyID != f.KeyID || f.Method != "" && !strings.EqualFold(r.Method, f.Method) ||
			hi != 0 && (r.Status < lo || r.Status > hi) ||
			!f.From.IsZero() && r.Time.Before(f.From) || !f.To.IsZero() && !r.Time.Before(f.To) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func TestQueryAndExport(t *testing.T) {
	// Only FlushLogs writes (no timer), so that s's half is written first.
	url := pgtest.Shared(t).DB(t)
	s := openURL(t, url, func(o Options) Options { return o.WithFlushInterval(time.Hour) })
	other := openURL(t, url, func(o Options) Options { return o.WithNode("node-b").WithFlushInterval(time.Hour) })
	r := rand.New(rand.NewPCG(1, 2))
	// Across three days, so three partitions; from two daemons.
	base := time.Now().UTC().Add(-50 * time.Hour)
	var all []usagelog.Record
	const n = 3000
	for i := range n {
		e := randEntry(r, base, i*60_000) // one a minute: 50 hours
		rec := recordOf(e)
		rec.Node = "node-a"
		if i >= n/2 {
			rec.Node = "node-b"
		}
		all = append(all, rec)
		if i < n/2 {
			s.AppendLog(&e)
		} else {
			other.AppendLog(&e)
		}
	}
	// s's half is written first: the order of writes is that of all.
	require.NoError(t, s.FlushLogs())
	require.NoError(t, other.FlushLogs())
	st := s.LogStats()
	require.Equal(t, uint64(n/2), st.Written)
	require.Zero(t, st.Queued+st.InSegment)

	ctx := context.Background()
	filters := []usagelog.Filter{
		{}, {KeyID: "key_a"}, {Method: "get"}, {Status: "4xx"}, {Status: "500", KeyID: "key_b"},
		{From: base.Add(10 * time.Hour), To: base.Add(30 * time.Hour)},
		{KeyID: "key_c", Method: "POST", From: base.Add(20 * time.Hour)},
	}
	for _, f := range filters {
		want := bruteForce(all, f)
		// Paged.
		var got []usagelog.Record
		pf := f
		pf.Limit = 97
		for {
			p, err := s.QueryLogs(ctx, pf)
			require.NoError(t, err)
			got = append(got, p.Items...)
			if p.NextCursor == "" {
				break
			}
			pf.Cursor = p.NextCursor
		}
		require.Equal(t, len(want), len(got), "filter %+v", f)
		require.Equal(t, want, got, "filter %+v", f)

		// CSV, byte for byte.
		var buf bytes.Buffer
		names := func(id string) string { return "name of " + id }
		rows, err := other.ExportCSV(ctx, &buf, f, names)
		require.NoError(t, err)
		require.Equal(t, len(want), rows)
		var exp bytes.Buffer
		cw := usagelog.NewCSVWriter(&exp, names)
		for i := range want {
			require.NoError(t, cw.WriteRecord(&want[i]))
		}
		require.NoError(t, cw.Flush())
		require.Equal(t, exp.String(), buf.String(), "filter %+v", f)
	}

	// Bad filters are the store's FilterErrors.
	for _, f := range []usagelog.Filter{{Status: "99"}, {Limit: -1}, {Cursor: "zz"}, {Cursor: "AQEB"}} {
		_, err := s.QueryLogs(ctx, f)
		require.ErrorIs(t, err, usagelog.ErrBadFilter, "%+v", f)
	}

	// Every record names its daemon.
	var a, b int
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE node = 'node-a'), count(*) FILTER (WHERE node = 'node-b') FROM usage_log").Scan(&a, &b))
	require.Equal(t, []int{n / 2, n / 2}, []int{a, b})

	// LastUsed covers the fleet: s sees other's records after a refresh.
	want := map[string]time.Time{}
	for _, rec := range all {
		if rec.KeyID != "" && rec.Time.After(want[rec.KeyID]) {
			want[rec.KeyID] = rec.Time
		}
	}
	require.NoError(t, s.logs.refreshLastUsed(ctx))
	for k, w := range want {
		require.Equal(t, w, s.LastUsed(k), k)
	}
	require.True(t, s.LastUsed("nope").IsZero())
}

// TestRetentionDropsPartitions: partitions past Retention go, whole.
func TestRetentionDropsPartitions(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now().UTC()
	for _, age := range []time.Duration{0, 73 * time.Hour, 100 * time.Hour} {
		s.AppendLog(&usagelog.Entry{Time: now.Add(-age), KeyID: "key_a", Method: []byte("GET"), Status: 200})
	}
	require.NoError(t, s.FlushLogs())
	require.NoError(t, s.SetRetention(48*time.Hour))
	n, err := s.logs.expire(context.Background(), now)
	require.NoError(t, err)
	require.Equal(t, 2, n, "partitions dropped (those of 73 and 100 hours ago)")
	p, err := s.QueryLogs(context.Background(), usagelog.Filter{})
	require.NoError(t, err)
	require.Len(t, p.Items, 1)
}

// TestAppendLogNoAllocs: the check path's AppendLog allocates nothing.
func TestAppendLogNoAllocs(t *testing.T) {
	s, _ := openTest(t)
	e := usagelog.Entry{Time: time.Now(), KeyID: "key_a", Method: []byte("GET"), Path: []byte("/x"), Status: 200, IP: netip.MustParseAddr("10.0.0.1")}
	if n := testing.AllocsPerRun(1000, func() { s.AppendLog(&e) }); n != 0 {
		t.Fatalf("AppendLog: got %v allocations, want 0", n)
	}
}

// TestOutage: with PostgreSQL stopped, key changes and log reads fail with
// store.ErrUnavailable and nothing is applied, AppendLog keeps accepting, and
// every record spooled meanwhile arrives once the server is back, once.
func TestOutage(t *testing.T) {
	srv := pgtest.New(t)
	url := srv.DB(t)
	s := openURL(t, url, func(o Options) Options {
		return o.WithSpool(t.TempDir(), 64<<20).WithBatchRecords(500).WithLogBuffer(4096)
	})
	ctx := context.Background()
	_, err := s.CreateKey(ctx, newKey("key_o"), "admin")
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, 4))
	base := time.Now().UTC()
	appended := 0
	appendN := func(n int) {
		for range n {
			e := randEntry(r, base, appended)
			s.AppendLog(&e)
			appended++
		}
	}
	appendN(1000)
	require.NoError(t, s.FlushLogs())
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notified := make(chan uint64, 64)
	go s.Listen(lctx, func(seq uint64) { notified <- seq })
	require.Equal(t, uint64(1), <-notified)
	up, _ := s.Up()
	require.True(t, up)

	require.NoError(t, srv.Stop())
	start := time.Now()
	require.Eventually(t, func() bool { up, _ := s.Up(); return !up }, 5*time.Second, 20*time.Millisecond, "Up reports the outage")
	_, since := s.Up()
	require.WithinDuration(t, start, since, 3*time.Second, "Up says since when")
	_, err = s.UpdateKey(ctx, "key_o", "admin", "", func(k *engine.Key) error { k.Name = "during"; return nil })
	require.ErrorIs(t, err, store.ErrUnavailable)
	t.Logf("write during the outage: %v", err)
	_, err = s.QueryLogs(ctx, usagelog.Filter{})
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.Changes(ctx, 0, 0)
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, _, err = s.LoadAll(ctx)
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.GetKey(ctx, "key_o")
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.CreateKey(ctx, newKey("key_o2"), "admin")
	require.ErrorIs(t, err, store.ErrUnavailable)
	// Records keep coming for 5 s.
	for time.Since(start) < 5*time.Second {
		appendN(500)
		time.Sleep(100 * time.Millisecond)
	}
	require.ErrorIs(t, s.FlushLogs(), store.ErrUnavailable)
	spooled, bytes := s.Spooled()
	t.Logf("outage of %v: %d records spooled (%d bytes)", time.Since(start).Round(time.Millisecond), spooled, bytes)
	require.Positive(t, spooled)

	for len(s.Notifications()) > 0 {
		<-s.Notifications()
	}
	require.NoError(t, srv.Start())
	require.Eventually(t, func() bool { return s.FlushLogs() == nil }, 20*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { up, _ := s.Up(); return up }, 5*time.Second, 20*time.Millisecond, "Up reports the return")
	select {
	case <-s.Notifications():
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after reconnecting: a follower would not catch up at once")
	}
	st := s.LogStats()
	require.Equal(t, uint64(appended), st.Written, "%+v", st)
	require.Zero(t, st.Dropped+st.WriteErrors)
	var count, distinct int
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT (time_ns, path, method, key_id)) FROM usage_log").Scan(&count, &distinct))
	require.Equal(t, appended, count, "records in the database")
	spooled, _ = s.Spooled()
	require.Zero(t, spooled)

	// The failed write left nothing; writes work again.
	k, v, err := s.GetKeyVersion(ctx, "key_o")
	require.NoError(t, err)
	require.NotEqual(t, "during", k.Name)
	require.Equal(t, uint64(1), v)
	c, err := s.UpdateKey(ctx, "key_o", "admin", "", func(k *engine.Key) error { k.Name = "after"; return nil })
	require.NoError(t, err)
	require.Equal(t, uint64(2), c.Seq)
	// Listen reconnected by itself: it reports the change (after the
	// current number on reconnecting).
	deadline := time.After(15 * time.Second)
	for seq := uint64(0); seq != 2; {
		select {
		case seq = <-notified:
		case <-deadline:
			t.Fatal("Listen did not report the change after the outage")
		}
	}
}

// TestOutageSpoolBound: records beyond the spool's bound are counted as
// dropped, exactly: written + dropped = appended.
func TestOutageSpoolBound(t *testing.T) {
	srv := pgtest.New(t)
	url := srv.DB(t)
	dir := t.TempDir()
	s := openURL(t, url, func(o Options) Options {
		return o.WithSpool(dir, 20_000).WithBatchRecords(100)
	})
	require.NoError(t, srv.Stop())
	r := rand.New(rand.NewPCG(5, 6))
	base := time.Now().UTC()
	const n = 3000
	for i := range n {
		e := randEntry(r, base, i)
		e.Path = []byte("/short")
		s.AppendLog(&e)
	}
	require.Error(t, s.FlushLogs())
	st := s.LogStats()
	spooled, size := s.Spooled()
	require.LessOrEqual(t, size, int64(20_000))
	require.Equal(t, n, spooled+int(st.Dropped), "spooled + dropped")
	t.Logf("spool bound 20000 bytes: %d records spooled, %d dropped", spooled, st.Dropped)
	require.Positive(t, st.Dropped)

	// The spool survives a restart of the daemon too.
	require.NoError(t, s.Close())
	require.NoError(t, srv.Start())
	s2 := openURL(t, url, func(o Options) Options { return o.WithSpool(dir, 20_000) })
	require.Equal(t, spooled, s2.LogStats().InSegment)
	require.Eventually(t, func() bool { return s2.LogStats().Written == uint64(spooled) }, 10*time.Second, 50*time.Millisecond)
	var count int
	require.NoError(t, s2.pool.QueryRow(context.Background(), "SELECT count(*) FROM usage_log").Scan(&count))
	require.Equal(t, spooled, count)
}

// TestMeasureLogs prints ingest, one-key query and export figures against
// the local server (not asserted; -pg.records sets the size).
func TestMeasureLogs(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	s := openURL(t, url, func(o Options) Options { return o.WithBatchRecords(*measureBatch) })
	measure(t, s)
}

func measure(t *testing.T, s *Store) {
	n := *measureRecords
	r := rand.New(rand.NewPCG(7, 8))
	base := time.Now().UTC().Add(-time.Hour)
	entries := make([]usagelog.Entry, 10_000)
	for i := range entries {
		entries[i] = randEntry(r, base, i)
		entries[i].Path = entries[i].Path[:min(len(entries[i].Path), 40)]
		entries[i].KeyID = fmt.Sprintf("key_%d", r.IntN(1000))
	}
	// Partitions first, so that creating them is not measured.
	s.AppendLog(&entries[0])
	require.NoError(t, s.FlushLogs())
	// In chunks that fit the ring, each flushed: the rate is COPY's.
	start := time.Now()
	for i := 0; i < n; {
		for j := 0; j < s.logs.ring.Cap()-1000 && i < n; j, i = j+1, i+1 {
			e := entries[i%len(entries)]
			e.Time = base.Add(time.Duration(i) * 3 * time.Microsecond)
			s.AppendLog(&e)
		}
		require.NoError(t, s.FlushLogs())
	}
	el := time.Since(start)
	require.Equal(t, uint64(n+1), s.LogStats().Written)
	t.Logf("ingest: %d records in %v: %.0f records/s (COPY, batches of %d)", n, el.Round(time.Millisecond), float64(n)/el.Seconds(), s.opts.BatchRecords)
	ctx := context.Background()
	_, err := s.pool.Exec(ctx, "ANALYZE usage_log")
	require.NoError(t, err)

	start = time.Now()
	p, err := s.QueryLogs(ctx, usagelog.Filter{KeyID: "key_7", Limit: 100})
	require.NoError(t, err)
	t.Logf("one-key query, first page of 100 over %d records: %v (%d items)", n+1, time.Since(start).Round(time.Microsecond), len(p.Items))
	start = time.Now()
	p, err = s.QueryLogs(ctx, usagelog.Filter{KeyID: "key_7", Status: "403", Method: "POST", Limit: 100})
	require.NoError(t, err)
	t.Logf("one-key + status + method query: %v (%d items)", time.Since(start).Round(time.Microsecond), len(p.Items))

	start = time.Now()
	p, err = s.QueryLogs(ctx, usagelog.Filter{Status: "503", Limit: 100})
	require.NoError(t, err)
	t.Logf("worst case, a status no record has, all keys (reads every record): %v (%d items)", time.Since(start).Round(time.Microsecond), len(p.Items))

	start = time.Now()
	rows, err := s.ExportCSV(ctx, io.Discard, usagelog.Filter{}, nil)
	require.NoError(t, err)
	el = time.Since(start)
	t.Logf("export: %d rows in %v: %.0f rows/s", rows, el.Round(time.Millisecond), float64(rows)/el.Seconds())
	require.Equal(t, n+1, rows)
}

// TestConcurrentDaemonsLogs: daemons writing batches over the same keys
// at once lose nothing (their last_used upserts once deadlocked, in map
// order, and the batch was counted as write errors).
func TestConcurrentDaemonsLogs(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	const daemons, per = 3, 12_000
	var stores []*Store
	for d := range daemons {
		stores = append(stores, openURL(t, url, func(o Options) Options {
			return o.WithNode(fmt.Sprintf("node-%d", d)).WithBatchRecords(400).WithFlushInterval(10 * time.Millisecond)
		}))
	}
	var wg sync.WaitGroup
	for d, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(d), 9))
			base := time.Now().UTC()
			for i := range per {
				e := randEntry(r, base, i)
				e.KeyID = testKeyIDs[r.IntN(len(testKeyIDs))]
				s.AppendLog(&e)
				if i%2000 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range stores {
		require.NoError(t, s.FlushLogs())
		st := s.LogStats()
		require.Equal(t, uint64(per), st.Written, "%+v", st)
	}
	var count int
	require.NoError(t, stores[0].pool.QueryRow(context.Background(), "SELECT count(*) FROM usage_log").Scan(&count))
	require.Equal(t, daemons*per, count)
}

var testKeyIDs = func() []string {
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = fmt.Sprintf("key_%03d", i)
	}
	return ids
}()

// TestZeroTimeRecord: a record with the zero time (or one past 2262) is
// written at the nearest bound of the filter range instead of failing its
// batch on a partition PostgreSQL cannot bound.
func TestZeroTimeRecord(t *testing.T) {
	s, _ := openTest(t)
	s.AppendLog(&usagelog.Entry{KeyID: "key_z", Method: []byte("GET"), Path: []byte("/"), Status: 200})
	s.AppendLog(&usagelog.Entry{Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), KeyID: "key_z", Method: []byte("GET"), Path: []byte("/"), Status: 200})
	require.NoError(t, s.FlushLogs())
	st := s.LogStats()
	require.Equal(t, uint64(2), st.Written, "%+v", st)
	p, err := s.QueryLogs(context.Background(), usagelog.Filter{KeyID: "key_z"})
	require.NoError(t, err)
	require.Len(t, p.Items, 2)
	require.True(t, p.Items[1].Time.Equal(usagelog.MinFilterTime), "%v", p.Items[1].Time)
	require.True(t, p.Items[0].Time.Before(usagelog.MaxFilterTime), "%v", p.Items[0].Time)
}

// TestAppendCopyNoAllocs: encoding a batch for COPY into the writer's
// reused buffer allocates nothing (pgx's CopyFrom boxed 11 values a row).
func TestAppendCopyNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	recs := make([]usagelog.Slot, 64)
	for i := range recs {
		e := randEntry(r, time.Now(), i)
		recs[i].Fill(&e, e.Time.UnixNano())
	}
	buf := appendCopy(nil, recs, "node-a")
	allocs := testing.AllocsPerRun(20, func() { buf = appendCopy(buf[:0], recs, "node-a") })
	require.Zero(t, allocs)
}
