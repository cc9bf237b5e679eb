package badgerstore

import (
	"math/rand/v2"
	"testing"

	"github.com/keygate/keygate/store/storetest"
	"github.com/keygate/keygate/usagelog"

	"github.com/stretchr/testify/require"
)

// segmentOf builds and encodes a segment of n random records.
func segmentOf(r *rand.Rand, n int) (*segment, []byte) {
	var g segment
	var sl usagelog.Slot
	for range n {
		e := storetest.RandEntry(r)
		sl.Fill(e, e.Time.UnixNano())
		g.add(&sl)
	}
	return &g, g.encodeBody(nil, nil)
}

// records returns g's records.
func records(g *segment) []usagelog.Record {
	out := make([]usagelog.Record, g.n)
	for i := range out {
		out[i] = g.record(i)
	}
	return out
}

func TestSegmentRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{0, 1, 2, 100, 4096} {
		g, body := segmentOf(r, n)
		v := compress(nil, body, nil)
		var d segment
		var buf []byte
		require.NoError(t, decodeSegment(&d, &buf, v))
		require.Equal(t, records(g), records(&d))
		// Every truncation is an error, never a panic.
		if n <= 100 {
			for cut := range len(body) {
				require.Error(t, d.decodeBody(body[:cut], segmentVersion), "n=%d cut=%d", n, cut)
			}
		}
		var x segIndex
		require.NoError(t, decodeIndex(&x, g.encodeIndex(nil)))
		require.Equal(t, n, x.n)
	}
}

// FuzzDecodeSegment feeds arbitrary bytes to the segment decoders, as a
// stored value and as a decompressed body. Garbage must give an error,
// never a panic, and whatever decodes must re-encode to the same records.
func FuzzDecodeSegment(f *testing.F) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{0, 1, 3, 20} {
		_, body := segmentOf(r, n)
		f.Add(body)
		f.Add(compress(nil, body, nil))
	}
	f.Add([]byte{})
	f.Add([]byte{segmentVersion})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var g segment
		var buf []byte
		_ = decodeSegment(&g, &buf, data)
		_ = g.decodeBody(data, segmentVersionV3) // the old decoder too, never a panic
		if err := g.decodeBody(data, segmentVersion); err != nil {
			return
		}
		recs := records(&g)
		var g2 segment
		var sl usagelog.Slot
		for i := range g.n {
			sl = usagelog.Slot{}
			sl.Time = g.times[i]
			sl.LatencyUS = g.lat[i]
			sl.KeyID = string(g.key(i))
			sl.EntryID = string(g.entry(i))
			sl.Code = string(g.code(i))
			sl.Hint = string(g.hint(i))
			sl.IP = g.ipOf(i)
			sl.Status = g.statusOf(i)
			m := g.method(i)
			if len(m) > usagelog.MaxMethod || len(g.path(i)) > usagelog.MaxPath {
				return // valid encoding, but AppendLog never makes it
			}
			sl.MethodLen = uint8(copy(sl.MethodBuf[:], m))
			sl.PathLen = uint16(copy(sl.PathBuf[:], g.path(i)))
			g2.add(&sl)
		}
		var g3 segment
		if err := g3.decodeBody(g2.encodeBody(nil, nil), segmentVersion); err != nil {
			t.Fatalf("re-encoded segment does not decode: %v", err)
		}
		require.Equal(t, recs, records(&g3))
		var x segIndex
		require.NoError(t, decodeIndex(&x, g.encodeIndex(nil)))
	})
}
