package badgerstore

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
)

// TestLowDiskSpace: below the free-space reserve key changes fail with
// store.ErrNoSpace and change nothing, log records are counted as write errors,
// and both work again once space returns, without reopening.
func TestLowDiskSpace(t *testing.T) {
	s := openTest(t, DefaultOptions(t.TempDir()))
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	k := storetest.Key(r, 0)
	_, err := s.CreateKey(ctx, k, "t")
	require.NoError(t, err)

	s.opts.MinFreeSpace = math.MaxInt64 // no file system has that much free
	_, err = s.CreateKey(ctx, storetest.Key(r, 1), "t")
	require.ErrorIs(t, err, store.ErrNoSpace)
	_, err = s.UpdateKey(ctx, k.ID, "t", "", func(k *engine.Key) error { k.Name = "changed"; return nil })
	require.ErrorIs(t, err, store.ErrNoSpace)
	s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: k.ID, IP: netip.MustParseAddr("203.0.113.5"), Status: 200})
	require.ErrorIs(t, s.FlushLogs(), store.ErrNoSpace)
	st := s.LogStats()
	require.Equal(t, uint64(1), st.WriteErrors)
	require.Equal(t, uint64(0), st.Written)

	keys, seq, err := s.LoadAll(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Equal(t, uint64(1), seq)
	require.Equal(t, k.Name, keys[0].Name)

	// A background write fails too; it is counted, not reported by a
	// later flush that succeeds.
	s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: k.ID, IP: netip.MustParseAddr("203.0.113.5"), Status: 200})
	require.Eventually(t, func() bool { return s.LogStats().WriteErrors == 2 }, 5*time.Second, 5*time.Millisecond)

	s.opts.MinFreeSpace = 1 // space is back
	_, err = s.UpdateKey(ctx, k.ID, "t", "", func(k *engine.Key) error { k.Name = "changed"; return nil })
	require.NoError(t, err)
	s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: k.ID, IP: netip.MustParseAddr("203.0.113.5"), Status: 200})
	require.NoError(t, s.FlushLogs())
	require.Equal(t, uint64(1), s.LogStats().Written)
}
