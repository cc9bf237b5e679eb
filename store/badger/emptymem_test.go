package badgerstore

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/keygate/keygate/store/storetest"

	"github.com/stretchr/testify/require"
)

// TestOpenEmptyMemtableFile: a kill between creating a memtable log file
// and sizing it leaves an empty *.mem file, on which Badger refuses to
// open ("Create a new file"). It holds nothing, so Open removes it.
func TestOpenEmptyMemtableFile(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(DefaultOptions(dir))
	require.NoError(t, err)
	k := storetest.Key(rand.New(rand.NewPCG(1, 1)), 0)
	_, err = s.CreateKey(context.Background(), k, "t")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o600))

	s, err = Open(DefaultOptions(dir))
	require.NoError(t, err)
	defer s.Close()
	got, err := s.GetKey(context.Background(), k.ID)
	require.NoError(t, err)
	require.Equal(t, k, got)
}
