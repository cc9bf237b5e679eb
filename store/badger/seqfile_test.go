package badgerstore

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/store/storetest"

	"github.com/stretchr/testify/require"
)

// TestSeqFileDetectsLostChanges: when the database holds fewer changes
// than were acknowledged (its write-ahead log lost a tail), Open fails
// with store.ErrCorrupt instead of serving the older keys.
func TestSeqFileDetectsLostChanges(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(DefaultOptions(dir))
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 3 {
		_, err := s.CreateKey(context.Background(), storetest.Key(r, i), "t")
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())

	f, acked, err := openSeqFile(dir)
	require.NoError(t, err)
	require.Equal(t, uint64(3), acked, "every acknowledged change is recorded")
	f.Close()

	// As if changes 4..7 had been acknowledged and then lost.
	s = &Store{}
	s.seqf, _, err = openSeqFile(dir)
	require.NoError(t, err)
	require.NoError(t, s.recordSeq(7))
	s.seqf.Close()
	_, err = Open(DefaultOptions(dir))
	require.ErrorIs(t, err, store.ErrCorrupt)
	require.ErrorContains(t, err, "change 7 was acknowledged")

	// A record behind the database (a crash between the commit and the
	// record) is fine.
	s.seqf, _, _ = openSeqFile(dir)
	require.NoError(t, s.recordSeq(2))
	s.seqf.Close()
	s, err = Open(DefaultOptions(dir))
	require.NoError(t, err)
	require.Equal(t, uint64(3), s.Seq())
	require.NoError(t, s.Close())
}
