//go:build !race

package badgerstore

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/usagelog"
)

// TestNoAllocsAppendLog proves that AppendLog, which runs on the check
// path, does not allocate: neither when it buffers a record nor when it
// drops one.
func TestNoAllocsAppendLog(t *testing.T) {
	// The writer must not run during the measurement, or its allocations
	// would be counted: with FlushInterval an hour it wakes only when
	// AppendLog finds notifyAt (2048) records buffered.
	s := openTest(t, DefaultOptions("").WithInMemory(true).WithLogBuffer(1<<12).WithFlushInterval(time.Hour))
	method, path := []byte("GET"), []byte("/v1/orders/12345?expand=items")
	e := &usagelog.Entry{
		Time:    time.Now(),
		KeyID:   "key_0123456789abcdef",
		EntryID: "ent_0123456789ab",
		IP:      netip.MustParseAddr("2001:db8::1"),
		Method:  method,
		Path:    path,
		Status:  403,
		Code:    "IP_NOT_ALLOWED",
		Latency: 12 * time.Microsecond,
	}
	if n := testing.AllocsPerRun(1000, func() { s.AppendLog(e) }); n != 0 {
		t.Errorf("AppendLog (buffering): %v allocs, want 0", n)
	}
	// Dropping: once closed (a full ring drops by the same branch of
	// usagelog.Ring.Append, measured in usagelog's TestRingNoAllocs).
	require.NoError(t, s.Close())
	before := s.LogStats().Dropped
	if n := testing.AllocsPerRun(1000, func() { s.AppendLog(e) }); n != 0 {
		t.Errorf("AppendLog (dropping): %v allocs, want 0", n)
	}
	if s.LogStats().Dropped == before {
		t.Error("a closed store dropped nothing")
	}
}
