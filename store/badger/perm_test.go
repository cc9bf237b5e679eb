package badgerstore

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/usagelog"
)

// TestPrivateFileModes: after writes and a reopen, every file in the store
// directory is 0600 and every directory below it 0700, though the test runs
// with the usual umask 022 and a directory of mode 0755 holding files an
// older version left 0644. Before, Badger's files were 0644.
func TestPrivateFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin-token"), []byte("x"), 0o644))
	require.NoError(t, os.Chmod(filepath.Join(dir, "admin-token"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "old"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(dir, "old"), 0o755))
	for round := range 2 {
		s, err := Open(DefaultOptions(dir).WithSyncWrites(true))
		require.NoError(t, err)
		k := &engine.Key{ID: engine.NewKeyID(), Name: "k", Hash: engine.HashSecret([]byte("s")), CreatedAt: time.Now()}
		_, err = s.CreateKey(context.Background(), k, "test")
		require.NoError(t, err)
		for i := range 100 {
			s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: k.ID, Method: []byte("GET"), Path: []byte("/"), Status: 200 + i%2})
		}
		require.NoError(t, s.FlushLogs())
		require.NoError(t, s.Close())
		n := 0
		require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			fi, err := d.Info()
			require.NoError(t, err)
			switch {
			case path == dir:
				if fi.Mode().Perm() != 0o755 {
					t.Errorf("round %d: the directory itself is %v, want its own 0755 kept", round, fi.Mode().Perm())
				}
			case d.IsDir():
				if fi.Mode().Perm() != 0o700 {
					t.Errorf("round %d: directory %s is %v, want 0700", round, path, fi.Mode().Perm())
				}
			default:
				n++
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("round %d: file %s is %v, want 0600", round, path, fi.Mode().Perm())
				}
			}
			return nil
		}))
		if n < 5 {
			t.Errorf("round %d: %d files in the store directory, want Badger's and the store's", round, n)
		}
	}
}
