package badgerstore

import (
	"encoding/gob"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/usagelog"
)

// TestDecodeSegmentVersion3: a segment written by keygate before format
// version 4 (testdata/segment-v3.zst: 301 records of storetest.RandEntry
// and one of an unknown key, stored by main at 6509a5c; their records,
// as that code decoded them, in segment-v3.gob) still decodes to the
// same records.
func TestDecodeSegmentVersion3(t *testing.T) {
	v, err := os.ReadFile("testdata/segment-v3.zst")
	require.NoError(t, err)
	f, err := os.Open("testdata/segment-v3.gob")
	require.NoError(t, err)
	defer f.Close()
	var want []usagelog.Record
	require.NoError(t, gob.NewDecoder(f).Decode(&want))
	require.Equal(t, byte(3), v[0])
	var g segment
	var buf []byte
	require.NoError(t, decodeSegment(&g, &buf, v))
	got := records(&g)
	require.Len(t, got, len(want))
	for i := range got {
		require.True(t, want[i].Time.Equal(got[i].Time), "record %d: time %v, want %v", i, got[i].Time, want[i].Time)
		want[i].Time = got[i].Time
	}
	require.Equal(t, want, got)
	var x segIndex
	require.NoError(t, decodeIndex(&x, g.encodeIndex(nil)))
	require.Equal(t, len(want), x.n)
}
