package badgerstore

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	got := storetest.Walk(t, s, usagelog.Filter{}, nil)
	require.Len(t, got, 1)
	assert.Equal(t, "key_new", got[0].KeyID)
	n, err = s.expireLogs(now)
	require.NoError(t, err)
	assert.Zero(t, n)
	s.gcValueLog() // must not fail or hang
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

// TestLastUsedStoredOncePerInterval checks how last-used times reach the
// disk: a key's time is stored when first seen, then not again with every
// segment until it is FlushInterval newer, while LastUsed stays exact;
// FlushLogs stores the rest, and a reopened store reads them.
func TestLastUsedStoredOncePerInterval(t *testing.T) {
	dir := t.TempDir()
	opts := DefaultOptions(dir).WithSegmentRecords(16).WithFlushInterval(time.Hour)
	s, err := Open(opts)
	require.NoError(t, err)
	base := time.Now().Add(-time.Minute)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	const n = 16 * 10
	for i := range n {
		s.AppendLog(&usagelog.Entry{Time: at(i), KeyID: "key_busy", Method: []byte("GET"), Status: 200})
	}
	// Full segments are written without a flush.
	require.Eventually(t, func() bool { return s.LogStats().Written == n }, 10*time.Second, 5*time.Millisecond)
	assert.True(t, s.LastUsed("key_busy").Equal(at(n-1)), "LastUsed is exact: %v", s.LastUsed("key_busy"))
	assert.Equal(t, at(15).UnixNano(), s.logs.storedLastUsed("key_busy"), "stored with the first segment only")

	require.NoError(t, s.FlushLogs())
	assert.Equal(t, at(n-1).UnixNano(), s.logs.storedLastUsed("key_busy"), "FlushLogs stores the rest")
	require.NoError(t, s.Close())

	s, err = Open(opts)
	require.NoError(t, err)
	defer s.Close()
	assert.True(t, s.LastUsed("key_busy").Equal(at(n-1)), "after reopening: %v", s.LastUsed("key_busy"))
}
