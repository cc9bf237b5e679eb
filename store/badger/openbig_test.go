package badgerstore

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4/y"

	"github.com/keygate/keygate/engine"

	"github.com/stretchr/testify/require"
)

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestOpenBigStore times opening the directory in KEYGATE_BIGSTORE (built
// by TestBuildBigStore; skipped when unset) phase by phase, wall and CPU:
// Open (with its own phases), LoadAll and the engine's Load. By hand, for
// RELIABILITY.md's "Opening a big store".
func TestOpenBigStore(t *testing.T) {
	dir := os.Getenv("KEYGATE_BIGSTORE")
	if dir == "" {
		t.Skip("KEYGATE_BIGSTORE not set")
	}
	phase := func(name string, fn func()) {
		w, c := time.Now(), cpuTime()
		fn()
		t.Logf("%-8s wall %6.2fs  CPU %6.2fs", name, time.Since(w).Seconds(), (cpuTime() - c).Seconds())
	}
	var s *Store
	phase("open", func() {
		var err error
		s, err = Open(DefaultOptions(dir))
		require.NoError(t, err)
	})
	defer s.Close()
	// What the tables hold: on-disk and uncompressed bytes by the key
	// prefix they start and end with ("mixed" for both).
	sizes := map[string][3]int{}
	for _, ti := range s.db.Tables() {
		l, r := y.ParseKey(ti.Left)[:2], y.ParseKey(ti.Right)[:2]
		p := string(l)
		if string(l) != string(r) {
			p = "mixed"
		}
		sz := sizes[p]
		sizes[p] = [3]int{sz[0] + 1, sz[1] + int(ti.OnDiskSize), sz[2] + int(ti.UncompressedSize)}
	}
	for p, sz := range sizes {
		t.Logf("tables of %-5s %3d, %4d MiB on disk, %4d MiB uncompressed", p, sz[0], sz[1]>>20, sz[2]>>20)
	}
	var keys []*engine.Key
	var seq uint64
	phase("loadall", func() {
		var err error
		keys, seq, err = s.LoadAll(context.Background())
		require.NoError(t, err)
	})
	e := engine.New()
	phase("build", func() { e.Load(keys, seq) })
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	t.Logf("%d keys, seq %d; peak RSS %d MiB", e.Snapshot().Len(), seq, ru.Maxrss>>10)
}
