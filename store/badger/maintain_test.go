package badgerstore

import (
	"net/netip"
	"testing"
	"time"

	"github.com/keygate/keygate/usagelog"

	"github.com/stretchr/testify/require"
)

// TestMaintenanceInterval: with a short interval, retention runs on its
// own and removes expired segments while the store is open.
func TestMaintenanceInterval(t *testing.T) {
	s := openTest(t, DefaultOptions(t.TempDir()).WithRetention(50*time.Millisecond).WithMaintenanceInterval(20*time.Millisecond))
	s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: "key_a", IP: netip.MustParseAddr("203.0.113.5"), Status: 200})
	require.NoError(t, s.FlushLogs())
	require.Equal(t, 1, s.LogStats().Segments)
	require.Eventually(t, func() bool { return s.LogStats().Segments == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Error(t, DefaultOptions("/x").WithMaintenanceInterval(-1).Validate())
}
