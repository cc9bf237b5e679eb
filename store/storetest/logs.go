package storetest

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

// Walk pages through every result of f, calling between (if not nil)
// after each page, and checks the page contract on the way.
func Walk(t *testing.T, s store.Store, f usagelog.Filter, between func()) []usagelog.Record {
	t.Helper()
	var got []usagelog.Record
	seen := map[string]bool{}
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
			require.False(t, seen[p.NextCursor], "cursor %q twice: the walk does not progress", p.NextCursor)
			seen[p.NextCursor] = true
		}
		got = append(got, p.Items...)
		if p.NextCursor == "" {
			return got
		}
		f.Cursor = p.NextCursor
		if between != nil {
			between()
		}
	}
}

// AppendAll appends n random records to s and their expected records, from
// a store that names its records node, to all.
func AppendAll(s store.Logs, node string, r *rand.Rand, n int, all *[]usagelog.Record) {
	for range n {
		e := RandEntry(r)
		s.AppendLog(e)
		*all = append(*all, RecordOf(e, node))
	}
}

func testQueryMatchesBruteForce(t *testing.T, h Harness) {
	s := open(t, h)
	r := rand.New(rand.NewPCG(11, 12))
	var all []usagelog.Record
	AppendAll(s, h.Node, r, 3000, &all)
	require.NoError(t, s.FlushLogs())
	require.Equal(t, uint64(3000), s.LogStats().Written)
	for i := range 300 {
		f := RandFilter(r)
		want := BruteForce(all, f)
		f.Limit = 1 + r.IntN(200)
		if i%10 == 0 {
			f.Limit = 0
		}
		got := Walk(t, s, f, nil)
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, got, "filter %+v", f)
	}
}

func testPagingWhileAppending(t *testing.T, h Harness) {
	s := open(t, h)
	r := rand.New(rand.NewPCG(13, 14))
	var all []usagelog.Record
	AppendAll(s, h.Node, r, 1000, &all)
	require.NoError(t, s.FlushLogs())
	for range 30 {
		f := RandFilter(r)
		f.Limit = 1 + r.IntN(40)
		want := BruteForce(all, f)
		pages := 0
		got := Walk(t, s, f, func() {
			// New records, some flushed, some still buffered.
			if pages++; pages > 10 {
				return
			}
			AppendAll(s, h.Node, r, r.IntN(60), &all)
			if r.IntN(2) == 0 {
				require.NoError(t, s.FlushLogs())
			}
		})
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, got, "filter %+v: a walk sees the records that existed when it began, once each", f)
		require.NoError(t, s.FlushLogs())
	}
}

func testQueryFilterErrors(t *testing.T, h Harness) {
	s := open(t, h)
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
		{usagelog.Filter{From: time.Unix(10, 0), To: time.Unix(10, 0)}, "to"},
		// Times the int64 nanoseconds cannot hold: 2300 wrapped to 1715
		// and selected every record, 1600 too.
		{usagelog.Filter{From: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, "from"},
		{usagelog.Filter{To: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}, "to"},
		{usagelog.Filter{To: time.Date(2262, 1, 1, 0, 0, 0, 1, time.UTC)}, "to"},
		{usagelog.Filter{From: time.Date(1677, 12, 31, 23, 59, 59, 0, time.UTC)}, "from"},
		{usagelog.Filter{From: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}, "from"},
		{usagelog.Filter{IP: "203.0.113.0/24"}, "ip"},
		{usagelog.Filter{IP: "fe80::1%eth0"}, "ip"},
		{usagelog.Filter{IP: "example.com"}, "ip"},
		{usagelog.Filter{PathPrefix: strings.Repeat("/", usagelog.MaxPath+1)}, "path_prefix"},
		{usagelog.Filter{Cursor: "!!"}, "cursor"},
		{usagelog.Filter{Cursor: "not a cursor"}, "cursor"},
	} {
		_, err := s.QueryLogs(context.Background(), tc.f)
		var fe *usagelog.FilterError
		require.ErrorAs(t, err, &fe, "%+v", tc.f)
		assert.Equal(t, tc.field, fe.Field)
		assert.ErrorIs(t, err, usagelog.ErrBadFilter)
		_, err = s.ExportCSV(context.Background(), &bytes.Buffer{}, tc.f, nil)
		if tc.field != "limit" {
			assert.ErrorIs(t, err, usagelog.ErrBadFilter, "ExportCSV %+v", tc.f)
		}
	}
	for _, ok := range []usagelog.Filter{{}, {Status: "4xx"}, {Status: "5XX"}, {Status: "204"}, {Limit: usagelog.MaxLimit}, {Method: "get"},
		{From: usagelog.MinFilterTime, To: usagelog.MaxFilterTime}, {To: usagelog.MinFilterTime.Add(time.Nanosecond)}, {From: usagelog.MaxFilterTime},
		{IP: "::ffff:203.0.113.5"}, {IP: "2001:DB8::1"}, {PathPrefix: strings.Repeat("/", usagelog.MaxPath)}} {
		_, err := s.QueryLogs(context.Background(), ok)
		assert.NoError(t, err, "%+v", ok)
	}
}

func testExportCSV(t *testing.T, h Harness) {
	s := open(t, h)
	r := rand.New(rand.NewPCG(15, 16))
	var all []usagelog.Record
	AppendAll(s, h.Node, r, 2000, &all)
	require.NoError(t, s.FlushLogs())
	for i := range 20 {
		f := RandFilter(r)
		f.Limit = 3 // ignored
		want := BruteForce(all, f)
		var buf bytes.Buffer
		asked := map[string]int{}
		n, err := s.ExportCSV(context.Background(), &buf, f, func(id string) string {
			asked[id]++
			return KeyNames[id]
		})
		require.NoError(t, err)
		require.Equal(t, len(want), n)
		for id, times := range asked {
			assert.NotEmpty(t, id, "names is not asked for the empty key id")
			assert.Equal(t, 1, times, "names is asked once per key id (%q)", id)
			assert.True(t, slices.ContainsFunc(want, func(r usagelog.Record) bool { return r.KeyID == id }), "names asked for %q, of no exported record", id)
		}
		if i == 0 {
			// Byte for byte what usagelog's writer makes of the records,
			// so that every backend's export is the same file.
			var wantBuf bytes.Buffer
			cw := usagelog.NewCSVWriter(&wantBuf, func(id string) string { return KeyNames[id] })
			for j := range want {
				require.NoError(t, cw.WriteRecord(&want[j]))
			}
			require.NoError(t, cw.Flush())
			require.Equal(t, wantBuf.String(), buf.String())
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, len(want)+1)
		require.Equal(t, strings.Split(usagelog.CSVHeader, ","), rows[0], "header first")
		for i, w := range want {
			require.Equal(t, []string{
				w.Time.Format(time.RFC3339Nano), CSVCell(w.KeyID), w.IP, CSVCell(w.Method), CSVCell(w.Path),
				strconv.Itoa(w.Status), CSVCell(w.Code), CSVCell(w.EntryID), strconv.FormatInt(w.LatencyUS, 10), CSVCell(w.SecretHint), CSVCell(w.Node),
				strings.ReplaceAll(CSVCell(KeyNames[w.KeyID]), "\r\n", "\n"),
			}, rows[i+1], "row %d", i+1)
		}
	}
	var buf bytes.Buffer
	n, err := s.ExportCSV(context.Background(), &buf, usagelog.Filter{KeyID: "key_absent"}, func(string) string { panic("asked for a name with no row") })
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, usagelog.CSVHeader+"\r\n", buf.String(), "an empty export is the header row")
	// Without names, key_name is empty.
	buf.Reset()
	n, err = s.ExportCSV(context.Background(), &buf, usagelog.Filter{KeyID: "key_a"}, nil)
	require.NoError(t, err)
	rows, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, n+1)
	for _, row := range rows[1:] {
		assert.Equal(t, []string{"key_a", ""}, []string{row[1], row[len(row)-1]})
	}
}

func testLogStats(t *testing.T, h Harness) {
	s := open(t, h)
	before := s.LogStats()
	r := rand.New(rand.NewPCG(19, 20))
	var all []usagelog.Record
	AppendAll(s, h.Node, r, 500, &all)
	st := s.LogStats()
	appended := func(st usagelog.Stats) uint64 {
		return uint64(st.Queued+st.InSegment) + st.Dropped + st.Written + st.WriteErrors
	}
	assert.Equal(t, appended(before)+500, appended(st), "queued + in segment + written + errors + dropped adds up: %+v", st)
	require.NoError(t, s.FlushLogs())
	st = s.LogStats()
	assert.Zero(t, st.Queued)
	assert.Zero(t, st.InSegment)
	assert.Zero(t, st.WriteErrors)
	assert.Equal(t, uint64(500), st.Written+st.Dropped)
}

func testLastUsed(t *testing.T, h Harness) {
	s := open(t, h)
	r := rand.New(rand.NewPCG(21, 22))
	var all []usagelog.Record
	AppendAll(s, h.Node, r, 300, &all)
	require.NoError(t, s.FlushLogs())
	for _, id := range KeyIDs {
		if id == "" {
			continue
		}
		var last time.Time
		for _, rec := range all {
			if rec.KeyID == id && rec.Time.After(last) {
				last = rec.Time
			}
		}
		assert.True(t, last.Equal(s.LastUsed(id)), "LastUsed(%q) = %v, want %v", id, s.LastUsed(id), last)
	}
	assert.True(t, s.LastUsed("key_never").IsZero())
}

func testCloseFlushesLogs(t *testing.T, h Harness) {
	s := open(t, h)
	r := rand.New(rand.NewPCG(17, 18))
	var all []usagelog.Record
	AppendAll(s, h.Node, r, 1000, &all)
	require.NoError(t, s.Close())
	dropped := s.LogStats().Dropped
	s.AppendLog(RandEntry(r))
	assert.Equal(t, dropped+1, s.LogStats().Dropped, "records after Close are dropped")
	assert.ErrorIs(t, s.FlushLogs(), store.ErrClosed)
	_, err := s.QueryLogs(context.Background(), usagelog.Filter{})
	assert.ErrorIs(t, err, store.ErrClosed)
	_, err = s.ExportCSV(context.Background(), &bytes.Buffer{}, usagelog.Filter{}, nil)
	assert.ErrorIs(t, err, store.ErrClosed)
	if h.Reopen == nil {
		return
	}
	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	got := Walk(t, s, usagelog.Filter{Limit: usagelog.MaxLimit}, nil)
	require.Equal(t, BruteForce(all, usagelog.Filter{}), got, "Close wrote every record")
	e := RandEntry(r)
	s.AppendLog(e)
	require.NoError(t, s.FlushLogs())
	p, err := s.QueryLogs(context.Background(), usagelog.Filter{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []usagelog.Record{RecordOf(e, h.Node)}, p.Items, "after a reopen the newest record still comes first")
}

func testConcurrentAppendQuery(t *testing.T, h Harness) {
	s := open(t, h)
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range per {
				s.AppendLog(RandEntry(r))
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
	wg.Go(func() {
		for ctx.Err() == nil {
			s.FlushLogs()
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	require.NoError(t, s.FlushLogs())
	st := s.LogStats()
	assert.Equal(t, uint64(writers*per), st.Written+st.Dropped, "%+v", st)
	n, err := s.ExportCSV(context.Background(), &bytes.Buffer{}, usagelog.Filter{}, nil)
	require.NoError(t, err)
	assert.Equal(t, int(st.Written), n)
}
