package badgerstore

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a log destination for a test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogTablesVerifiedWhileServing: a damaged block in a table of
// nothing but usage-log segments lets the store open (its keys are
// intact) and is reported while it serves; the same damage in a table
// with keys refuses the open.
func TestLogTablesVerifiedWhileServing(t *testing.T) {
	golden := t.TempDir()
	s, err := Open(DefaultOptions(golden).WithMinFreeSpace(-1))
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(8, 8))
	for i := range 40 {
		_, err := s.CreateKey(context.Background(), storetest.Key(r, i), "t")
		require.NoError(t, err)
	}
	// Six memtables (each Close flushes one into a level-0 table), more
	// than NumLevelZeroTables: compaction moves them into tables of at
	// most 2 MiB by key range, the segments into tables of their own.
	path := make([]byte, 300)
	for range 6 {
		for i := range 12000 { // ~3.5 MiB of incompressible segments
			for j := range path {
				path[j] = byte(r.Uint32())
			}
			s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: "key_a", Method: []byte("GET"), Path: path, Status: 200})
			if i%2000 == 0 {
				require.NoError(t, s.FlushLogs())
			}
		}
		require.NoError(t, s.Close())
		s, err = Open(DefaultOptions(golden).WithMinFreeSpace(-1))
		require.NoError(t, err)
	}
	require.NoError(t, s.db.Flatten(1))
	want, err := keysDigest(s)
	require.NoError(t, err)
	for _, ti := range s.db.Tables() {
		t.Logf("level %d table %d: %d keys %q..%q", ti.Level, ti.ID, ti.KeyCount, ti.Left[:min(len(ti.Left), 4)], ti.Right[:min(len(ti.Right), 4)])
	}
	require.NoError(t, s.Close())

	bopts := badgerOptions(DefaultOptions(golden).withDefaults())
	later, _, err := verifyTableFiles(golden, bopts)
	require.NoError(t, err)
	require.NotEmpty(t, later, "tables of log segments only")
	tables, _ := filepath.Glob(filepath.Join(golden, "*.sst"))
	var keyTable string
	for _, f := range tables {
		if !strings.Contains(strings.Join(later, " "), f) {
			keyTable = f
		}
	}
	require.NotEmpty(t, keyTable, "a table with the keys")

	damaged := func(table string) string {
		dir := t.TempDir()
		es, _ := os.ReadDir(golden)
		for _, e := range es {
			c, err := os.ReadFile(filepath.Join(golden, e.Name()))
			require.NoError(t, err)
			if e.Name() == filepath.Base(table) {
				for j := 100; j < 164; j++ { // a data block, far from the index
					c[j] ^= 0xff
				}
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), c, 0o600))
		}
		return dir
	}

	var logs lockedBuffer
	dir := damaged(later[0])
	s, err = Open(DefaultOptions(dir).WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err, "a damaged log table does not stop the keys")
	got, err := keysDigest(s)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	s.Serving() // the log tables are verified from now on
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "a usage-log table is damaged") {
		require.True(t, time.Now().Before(deadline), "no report of the damaged log table:\n%s", logs.String())
		time.Sleep(20 * time.Millisecond)
	}
	assert.Contains(t, logs.String(), filepath.Base(later[0]))
	require.NoError(t, s.Close())

	_, err = Open(DefaultOptions(damaged(keyTable)))
	require.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), filepath.Base(keyTable))
}
