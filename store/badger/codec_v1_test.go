package badgerstore

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store/storetest"
)

// TestDecodeKeyVersion1: keys written before entry flags and rotation
// (format version 1) still decode, with neither.
func TestDecodeKeyVersion1(t *testing.T) {
	k := &engine.Key{ID: "key_1", Name: "old", Hint: "kg_AbCdEfGh", CreatedAt: storetest.Time(1_700_000_000, 0), ReportOnly: true}
	k.Hash[0] = 7
	v2 := encodeKey(nil, k)
	// Version 2 of a key without entries is version 1 plus the previous
	// secret: 32 zero bytes, an empty hint, the zero time.
	v1 := append([]byte{keyVersionV1}, v2[1:len(v2)-34]...)
	got, err := decodeKey(v1)
	require.NoError(t, err)
	require.Equal(t, k, got)
}
