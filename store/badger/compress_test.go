package badgerstore

import (
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// TestCompressSliced checks the block-at-a-time compressor: one frame
// that declares the body's size, yield called between blocks only,
// and segments written before it (one EncodeAll frame at
// SpeedBetterCompression, 8 MiB window) still decode.
func TestCompressSliced(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, n := range []int{0, 1, 700, 4096} {
		g, body := segmentOf(r, n)
		yields := 0
		v := compress(nil, body, func() { yields++ })
		require.Equal(t, byte(segmentVersion), v[0])
		require.Equal(t, max(0, (len(body)+segmentBlock-1)/segmentBlock-1), yields, "n=%d, %d bytes", n, len(body))
		var h zstd.Header
		require.NoError(t, h.Decode(v[1:]))
		if len(body) > segmentBlock { // a one-block body is a single-segment frame
			require.True(t, h.HasFCS, "n=%d", n)
			require.Equal(t, uint64(len(body)), h.FrameContentSize)
		}

		old, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
		require.NoError(t, err)
		for _, stored := range [][]byte{v, old.EncodeAll(body, []byte{segmentVersion})} {
			var d segment
			var buf []byte
			require.NoError(t, decodeSegment(&d, &buf, stored))
			require.Equal(t, records(g), records(&d))
		}
	}
}
