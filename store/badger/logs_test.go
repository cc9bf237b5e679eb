package badgerstore

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	testKeyIDs   = []string{"key_a", "key_b", "key_c", "key_d", "=key_e", ""}
	testMethods  = []string{"GET", "POST", "get", "DELETE", "PATCH"}
	testStatuses = []int{200, 200, 200, 401, 403, 404, 500, 503}
	testCodes    = []string{"", "INVALID_KEY", "IP_NOT_ALLOWED", "-1+1"}
	testEntries  = []string{"", "ent_1", "ent_2"}
	pathChars    = []byte("abc/?=&-+@,\"\n\r\t 019é")
)

// testT0 is recent, so that retention (which runs at Open) keeps the
// test records.
var testT0 = time.Now().Add(-2 * time.Hour).Unix()

func randEntry(r *rand.Rand) *usagelog.Entry {
	e := &usagelog.Entry{
		Time:    time.Unix(testT0+r.Int64N(3600), r.Int64N(1e9)),
		KeyID:   testKeyIDs[r.IntN(len(testKeyIDs))],
		EntryID: testEntries[r.IntN(len(testEntries))],
		Method:  []byte(testMethods[r.IntN(len(testMethods))]),
		Status:  testStatuses[r.IntN(len(testStatuses))],
		Code:    testCodes[r.IntN(len(testCodes))],
		Latency: time.Duration(r.Int64N(5e6)),
	}
	switch r.IntN(3) {
	case 0:
		e.IP = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(256))})
	case 1:
		e.IP = netip.MustParseAddr("2001:db8::1")
	}
	p := make([]byte, r.IntN(40))
	for i := range p {
		p[i] = pathChars[r.IntN(len(pathChars))]
	}
	// encoding/csv reads CRLF inside a quoted field as LF; keep them out.
	e.Path = bytes.ReplaceAll(p, []byte("\r\n"), []byte("\r."))
	if r.IntN(50) == 0 {
		e.Path = bytes.Repeat([]byte("x"), usagelog.MaxPath+10)
	}
	return e
}

// recordOf is what a query must return for e.
func recordOf(e *usagelog.Entry) usagelog.Record {
	r := usagelog.Record{
		Time:      time.Unix(0, e.Time.UnixNano()).UTC(),
		KeyID:     e.KeyID,
		Method:    string(e.Method),
		Path:      string(e.Path[:min(len(e.Path), usagelog.MaxPath)]),
		Status:    e.Status,
		Code:      e.Code,
		EntryID:   e.EntryID,
		LatencyUS: e.Latency.Microseconds(),
	}
	if e.IP.IsValid() {
		r.IP = e.IP.String()
	}
	return r
}

// bruteForce is the reference query: every record, newest first, checked
// one by one.
func bruteForce(all []usagelog.Record, f usagelog.Filter) []usagelog.Record {
	lo, hi, _ := usagelog.ParseStatusFilter(f.Status)
	var out []usagelog.Record
	for i := len(all) - 1; i >= 0; i-- {
		r := all[i]
		if f.KeyID != "" && r.KeyID != f.KeyID ||
			f.Method != "" && !strings.EqualFold(r.Method, f.Method) ||
			hi != 0 && (r.Status < lo || r.Status > hi) ||
			!f.From.IsZero() && r.Time.Before(f.From) ||
			!f.To.IsZero() && !r.Time.Before(f.To) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func randFilter(r *rand.Rand) usagelog.Filter {
	var f usagelog.Filter
	if r.IntN(2) == 0 {
		f.KeyID = testKeyIDs[r.IntN(len(testKeyIDs))]
		if r.IntN(10) == 0 {
			f.KeyID = "key_absent"
		}
	}
	if r.IntN(3) == 0 {
		f.Method = []string{"get", "GET", "Post", "delete", "OPTIONS"}[r.IntN(5)]
	}
	if r.IntN(3) == 0 {
		f.Status = []string{"200", "403", "4xx", "5XX", "2xx", "302"}[r.IntN(6)]
	}
	if r.IntN(3) == 0 {
		f.From = time.Unix(testT0+r.Int64N(3600), 0)
	}
	if r.IntN(3) == 0 {
		f.To = time.Unix(testT0+r.Int64N(3600), 0)
		if f.To.Before(f.From) {
			f.From, f.To = f.To, f.From
		}
	}
	return f
}

// walk pages through every result of f.
func walk(t *testing.T, s *Store, f usagelog.Filter, between func()) []usagelog.Record {
	t.Helper()
	var got []usagelog.Record
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10000)
		p, err := s.QueryLogs(context.Background(), f)
		require.NoError(t, err)
		require.NotNil(t, p.Items)
		limit := f.Limit
		if limit == 0 {
			limit = usagelog.DefaultLimit
		}
		require.LessOrEqual(t, len(p.Items), limit)
		if p.NextCursor != "" {
			require.Len(t, p.Items, limit, "a page with a cursor is full")
		}
		got = append(got, p.Items...)
		if p.NextCursor == "" {
			return got
		}
		pos, ok := parseCursor(p.NextCursor)
		require.True(t, ok)
		if f.Cursor != "" {
			prev, _ := parseCursor(f.Cursor)
			require.True(t, pos.seg < prev.seg || pos.seg == prev.seg && pos.i < prev.i, "cursor %+v after %+v", pos, prev)
		}
		f.Cursor = p.NextCursor
		if between != nil {
			between()
		}
	}
}

func appendAll(s *Store, r *rand.Rand, n int, all *[]usagelog.Record) {
	for range n {
		e := randEntry(r)
		s.AppendLog(e)
		*all = append(*all, recordOf(e))
	}
}

func TestQueryMatchesBruteForce(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true).WithSegmentRecords(64).WithFlushInterval(time.Hour))
	r := rand.New(rand.NewPCG(11, 12))
	var all []usagelog.Record
	appendAll(s, r, 3000, &all)
	require.NoError(t, s.FlushLogs())
	st := s.LogStats()
	require.Equal(t, uint64(3000), st.Written)
	require.Equal(t, 3000/64+1, st.Segments)

	for i := range 300 {
		f := randFilter(r)
		want := bruteForce(all, f)
		f.Limit = 1 + r.IntN(200)
		if i%10 == 0 {
			f.Limit = 0
		}
		got := walk(t, s, f, nil)
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, got, "filter %+v", f)
	}
}

func TestPagingWhileAppending(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true).WithSegmentRecords(32).WithFlushInterval(time.Hour))
	r := rand.New(rand.NewPCG(13, 14))
	var all []usagelog.Record
	appendAll(s, r, 1000, &all)
	require.NoError(t, s.FlushLogs())
	for range 30 {
		f := randFilter(r)
		f.Limit = 1 + r.IntN(40)
		want := bruteForce(all, f)
		pages := 0
		got := walk(t, s, f, func() {
			// New records, some flushed, some still buffered.
			if pages++; pages > 10 {
				return
			}
			appendAll(s, r, r.IntN(60), &all)
			if r.IntN(2) == 0 {
				require.NoError(t, s.FlushLogs())
			}
		})
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, got, "filter %+v", f)
		require.NoError(t, s.FlushLogs())
	}
}

func TestQueryFilterErrors(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true))
	for _, tc := range []struct {
		f     usagelog.Filter
		field string
	}{
		{usagelog.Filter{Status: "4x"}, "status"},
		{usagelog.Filter{Status: "600"}, "status"},
		{usagelog.Filter{Status: "099"}, "status"},
		{usagelog.Filter{Status: "x00"}, "status"},
		{usagelog.Filter{Status: "abc"}, "status"},
		{usagelog.Filter{Limit: -1}, "limit"},
		{usagelog.Filter{Limit: usagelog.MaxLimit + 1}, "limit"},
		{usagelog.Filter{Method: "GE T"}, "method"},
		{usagelog.Filter{KeyID: strings.Repeat("k", 200)}, "key_id"},
		{usagelog.Filter{From: time.Unix(10, 0), To: time.Unix(5, 0)}, "to"},
		{usagelog.Filter{Cursor: "!!"}, "cursor"},
		{usagelog.Filter{Cursor: "AAAA"}, "cursor"},
	} {
		_, err := s.QueryLogs(context.Background(), tc.f)
		var fe *usagelog.FilterError
		require.ErrorAs(t, err, &fe, "%+v", tc.f)
		assert.Equal(t, tc.field, fe.Field)
		assert.ErrorIs(t, err, usagelog.ErrBadFilter)
		_, err = s.ExportCSV(context.Background(), &bytes.Buffer{}, tc.f)
		if tc.field != "limit" {
			assert.ErrorIs(t, err, usagelog.ErrBadFilter)
		}
	}
	for _, ok := range []usagelog.Filter{{}, {Status: "4xx"}, {Status: "5XX"}, {Status: "204"}, {Limit: usagelog.MaxLimit}, {Method: "get"}} {
		assert.NoError(t, ok.Validate(), "%+v", ok)
	}
}

// csvCell is what a spreadsheet-safe export writes for s.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func TestExportCSV(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true).WithSegmentRecords(100).WithFlushInterval(time.Hour))
	r := rand.New(rand.NewPCG(15, 16))
	var all []usagelog.Record
	appendAll(s, r, 2000, &all)
	require.NoError(t, s.FlushLogs())
	for range 20 {
		f := randFilter(r)
		f.Limit = 3 // ignored
		want := bruteForce(all, f)
		var buf bytes.Buffer
		n, err := s.ExportCSV(context.Background(), &buf, f)
		require.NoError(t, err)
		require.Equal(t, len(want), n)
		rows, err := csv.NewReader(&buf).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, len(want)+1)
		require.Equal(t, strings.Split(usagelog.CSVHeader, ","), rows[0])
		for i, w := range want {
			require.Equal(t, []string{
				w.Time.Format(time.RFC3339Nano), csvCell(w.KeyID), w.IP, csvCell(w.Method), csvCell(w.Path),
				strconv.Itoa(w.Status), csvCell(w.Code), csvCell(w.EntryID), strconv.FormatInt(w.LatencyUS, 10),
			}, rows[i+1], "row %d", i+1)
		}
	}
}

func TestDroppedWhenFull(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true).WithLogBuffer(16).WithFlushInterval(time.Hour))
	e := &usagelog.Entry{Time: time.Now(), KeyID: "key_a", Method: []byte("GET"), Path: []byte("/"), Status: 200}
	for range 100 {
		s.AppendLog(e)
	}
	st := s.LogStats()
	assert.Equal(t, uint64(100), uint64(st.Queued+st.InSegment)+st.Dropped+st.Written)
	assert.GreaterOrEqual(t, st.Dropped, uint64(100-16-16), "a writer wakes at half full")
	require.NoError(t, s.FlushLogs())
	st = s.LogStats()
	assert.Equal(t, 0, st.Queued)
	assert.Equal(t, 0, st.InSegment)
	assert.Equal(t, uint64(100), st.Dropped+st.Written)
	assert.Zero(t, st.WriteErrors)
}

func TestCloseFlushesAndReopen(t *testing.T) {
	dir := t.TempDir()
	opts := DefaultOptions(dir).WithFlushInterval(time.Hour).WithSegmentRecords(300)
	s, err := Open(opts)
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(17, 18))
	var all []usagelog.Record
	appendAll(s, r, 1000, &all)
	last := map[string]time.Time{}
	for _, rec := range all {
		if rec.KeyID != "" && rec.Time.After(last[rec.KeyID]) {
			last[rec.KeyID] = rec.Time
		}
	}
	require.NoError(t, s.Close())
	s.AppendLog(randEntry(r))
	assert.Equal(t, uint64(1), s.LogStats().Dropped, "records after Close are dropped")
	assert.ErrorIs(t, s.FlushLogs(), store.ErrClosed)
	_, err = s.QueryLogs(context.Background(), usagelog.Filter{})
	assert.ErrorIs(t, err, store.ErrClosed)

	s = openTest(t, opts)
	assert.Equal(t, 4, s.LogStats().Segments)
	got := walk(t, s, usagelog.Filter{Limit: usagelog.MaxLimit}, nil)
	require.Equal(t, bruteForce(all, usagelog.Filter{}), got)
	for _, id := range testKeyIDs {
		assert.Equal(t, last[id], s.LastUsed(id), "LastUsed(%q)", id)
	}
	assert.True(t, s.LastUsed("key_never").IsZero())

	// The writer keeps going after a reopen: new segment ids follow the
	// old ones, so the newest record comes first.
	e := randEntry(r)
	s.AppendLog(e)
	require.NoError(t, s.FlushLogs())
	p, err := s.QueryLogs(context.Background(), usagelog.Filter{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []usagelog.Record{recordOf(e)}, p.Items)
}

func TestVisibleWithoutFlush(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true))
	start := time.Now()
	s.AppendLog(&usagelog.Entry{Time: start, KeyID: "key_soon", Method: []byte("GET"), Status: 200})
	for {
		p, err := s.QueryLogs(context.Background(), usagelog.Filter{KeyID: "key_soon"})
		require.NoError(t, err)
		if len(p.Items) == 1 {
			break
		}
		require.Less(t, time.Since(start), 2*time.Second, "a logged check is visible within 2 s")
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("visible after %v", time.Since(start))
	assert.False(t, s.LastUsed("key_soon").IsZero())
}

func TestRetention(t *testing.T) {
	s := openTest(t, DefaultOptions(t.TempDir()).WithRetention(time.Hour).WithFlushInterval(time.Hour))
	now := time.Now()
	for i := range 10 {
		s.AppendLog(&usagelog.Entry{Time: now.Add(-3 * time.Hour).Add(time.Duration(i)), KeyID: "key_old", Status: 200})
	}
	require.NoError(t, s.FlushLogs())
	s.AppendLog(&usagelog.Entry{Time: now.Add(-2 * time.Hour), KeyID: "key_old", Status: 200})
	require.NoError(t, s.FlushLogs())
	s.AppendLog(&usagelog.Entry{Time: now, KeyID: "key_new", Status: 200})
	require.NoError(t, s.FlushLogs())
	require.Equal(t, 3, s.LogStats().Segments)
	n, err := s.expireLogs(now)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, 1, s.LogStats().Segments)
	got := walk(t, s, usagelog.Filter{}, nil)
	require.Len(t, got, 1)
	assert.Equal(t, "key_new", got[0].KeyID)
	n, err = s.expireLogs(now)
	require.NoError(t, err)
	assert.Zero(t, n)
	s.gcValueLog() // must not fail or hang
}

func TestConcurrentAppendQuery(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true).WithSegmentRecords(128).WithFlushInterval(5*time.Millisecond))
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range per {
				s.AppendLog(randEntry(r))
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() {
		for ctx.Err() == nil {
			_, err := s.QueryLogs(ctx, usagelog.Filter{KeyID: "key_a", Limit: 50})
			if err != nil && !errors.Is(err, context.Canceled) {
				assert.NoError(t, err)
			}
		}
	})
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	require.NoError(t, s.FlushLogs())
	st := s.LogStats()
	assert.Equal(t, uint64(writers*per), st.Written+st.Dropped, "%+v", st)
	var n int
	n, err := s.ExportCSV(context.Background(), &bytes.Buffer{}, usagelog.Filter{})
	require.NoError(t, err)
	assert.Equal(t, int(st.Written), n)
}

func TestCursorRoundTrip(t *testing.T) {
	for _, p := range []position{{0, 0}, {1, 5}, {1 << 40, maxSegmentRecords}} {
		got, ok := parseCursor(p.cursor())
		require.True(t, ok)
		require.Equal(t, p, got)
	}
}

// TestWriterKeepsDraining: with the buffer kept nearly full, the writer
// must keep draining by itself, without a tick (here hours away).
func TestWriterKeepsDraining(t *testing.T) {
	s := openTest(t, DefaultOptions("").WithInMemory(true).WithLogBuffer(256).WithFlushInterval(4*time.Hour))
	e := &usagelog.Entry{Time: time.Now(), KeyID: "key_a", Method: []byte("GET"), Path: []byte("/"), Status: 200}
	deadline := time.Now().Add(10 * time.Second)
	for range 50_000 {
		for s.LogStats().Queued > 250 {
			require.True(t, time.Now().Before(deadline), "writer stalled: %+v", s.LogStats())
			time.Sleep(50 * time.Microsecond)
		}
		s.AppendLog(e)
	}
	require.NoError(t, s.FlushLogs())
	assert.Equal(t, uint64(50_000), s.LogStats().Written)
}
