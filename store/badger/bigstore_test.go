package badgerstore

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"

	"github.com/stretchr/testify/require"
)

// TestBuildBigStore builds a data directory with KEYGATE_BIGSTORE_KEYS
// keys (default 1M, each with its change) and KEYGATE_BIGSTORE_RECORDS
// usage-log records (default 10M) over the last 10 days, in
// KEYGATE_BIGSTORE (skipped when unset), for timing a daemon's start on
// a big store by hand (RELIABILITY.md).
func TestBuildBigStore(t *testing.T) {
	dir := os.Getenv("KEYGATE_BIGSTORE")
	if dir == "" {
		t.Skip("KEYGATE_BIGSTORE not set")
	}
	nkeys, nrec := envInt(t, "KEYGATE_BIGSTORE_KEYS", 1_000_000), envInt(t, "KEYGATE_BIGSTORE_RECORDS", 10_000_000)
	s, err := Open(DefaultOptions(dir).WithSyncWrites(false).WithLogBuffer(1 << 18).WithMinFreeSpace(-1))
	require.NoError(t, err)
	began := time.Now()
	r := rand.New(rand.NewPCG(1, 1))
	wb := s.db.NewWriteBatch()
	for i := range nkeys {
		k := storetest.Key(r, i)
		c := store.Change{Seq: uint64(i + 1), Time: time.Now().UTC(), Actor: "bigstore", Action: store.ActionCreate, KeyID: k.ID, After: k}
		require.NoError(t, wb.Set(keyOf(prefixKey, k.ID), encodeKey(nil, k)))
		require.NoError(t, wb.Set(seqKey(prefixChange, c.Seq), encodeChange(nil, &c)))
	}
	require.NoError(t, wb.Set(keySeq, binary.BigEndian.AppendUint64(nil, uint64(nkeys))))
	require.NoError(t, wb.Flush())
	t.Logf("%d keys in %v", nkeys, time.Since(began))
	began = time.Now()
	start := time.Now().Add(-10 * 24 * time.Hour)
	step := 10 * 24 * time.Hour / time.Duration(max(nrec, 1))
	e := &usagelog.Entry{Method: []byte("GET"), Status: 200}
	for i := range nrec {
		for s.LogStats().Queued > 1<<17 {
			time.Sleep(time.Millisecond)
		}
		e.Time = start.Add(time.Duration(i) * step)
		e.KeyID = fmt.Sprintf("key_%016d", r.IntN(nkeys))
		e.IP = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		e.Path = fmt.Appendf(e.Path[:0], "/v1/orders/%d", i%1000)
		s.AppendLog(e)
	}
	require.NoError(t, s.FlushLogs())
	st := s.LogStats()
	t.Logf("%d records (%d dropped) in %v", st.Written, st.Dropped, time.Since(began))
	require.NoError(t, s.Close())
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var n int
	_, err := fmt.Sscan(v, &n)
	require.NoError(t, err, name)
	return n
}
