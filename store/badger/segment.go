package badgerstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"sync"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"

	"github.com/klauspost/compress/zstd"
)

// A segment holds up to Options.SegmentRecords usage-log records, in the
// order they were appended, stored column by column and compressed with
// zstd as one frame. Beside it, under its own Badger key, a small
// uncompressed index lets a query skip the segment without reading it.
//
// segment value: byte segmentVersion, then the zstd frame of the body.
//
// body (version 3; version 2 is the same without the hints):
//
//	uvarint n (records)
//	4 dictionaries (key ids, entry ids, codes, methods):
//	    uvarint count, then count strings (uvarint length, bytes)
//	times: varint first Unix nanoseconds, then a column of the zigzag
//	    deltas from the previous record (the first is 0)
//	4 index columns (key, entry, code, method): values < dict count
//	statuses: column; latencies: column (microseconds)
//	addresses: n x (byte 0 | 4 + 4 bytes | 16 + 16 bytes)
//	hints (version 3): a dictionary of secret hints, then a column of
//	    indexes into it
//	path lengths: column, then the paths, concatenated
//
// A column of n integers is one byte w (0-8), the width in bytes of the
// largest, then w planes of n bytes each, least significant plane first.
//
// index (version 1):
//
//	byte indexVersion, uvarint n, varint min time, varint max time,
//	key ids and methods: uvarint count, then strings,
//	statuses: uvarint count, then uvarints
const (
	segmentVersion = 3
	// segmentVersionNoHint is the previous body, still read.
	segmentVersionNoHint = 2
	indexVersion         = 1

	// maxSegmentRecords bounds SegmentRecords and what a decoder accepts.
	maxSegmentRecords = 1 << 16
	// maxSegmentBody bounds a decompressed body: every record at its
	// largest, with room to spare.
	maxSegmentBody = 64 << 20
)

// The dictionaries of a segment.
const (
	dictKey = iota
	dictEntry
	dictCode
	dictMethod
	numDicts
)

// segment is one segment's records, column by column. The writer builds
// one with add; a query decodes one with decodeBody, which makes the
// dictionaries point into the body it was given.
type segment struct {
	n       int
	dicts   [numDicts]dict
	times   []int64
	idx     [numDicts][]uint32
	hints   dict
	hintIdx []uint32
	status  []uint16
	lat     []uint64
	ips     []netip.Addr
	pathEnd []uint32 // path i is paths[pathEnd[i-1]:pathEnd[i]]
	paths   []byte
	col     []uint64 // decoding scratch
}

type dict struct {
	vals [][]byte
	m    map[string]uint32 // the writer's lookup; nil when decoded
}

func (d *dict) intern(b []byte) uint32 {
	if i, ok := d.m[string(b)]; ok {
		return i
	}
	if d.m == nil {
		d.m = make(map[string]uint32)
	}
	i := uint32(len(d.vals))
	d.vals = append(d.vals, bytes.Clone(b))
	d.m[string(b)] = i
	return i
}

func (d *dict) internString(s string) uint32 {
	if i, ok := d.m[s]; ok {
		return i
	}
	if d.m == nil {
		d.m = make(map[string]uint32)
	}
	i := uint32(len(d.vals))
	d.vals = append(d.vals, []byte(s))
	d.m[s] = i
	return i
}

// lookup returns the index of s, or -1.
func (d *dict) lookup(s string) int {
	for i, v := range d.vals {
		if string(v) == s {
			return i
		}
	}
	return -1
}

func (g *segment) reset() {
	g.n = 0
	for i := range g.dicts {
		g.dicts[i].vals = g.dicts[i].vals[:0]
		clear(g.dicts[i].m)
		g.idx[i] = g.idx[i][:0]
	}
	g.hints.vals = g.hints.vals[:0]
	clear(g.hints.m)
	g.hintIdx = g.hintIdx[:0]
	g.times = g.times[:0]
	g.status = g.status[:0]
	g.lat = g.lat[:0]
	g.ips = g.ips[:0]
	g.pathEnd = g.pathEnd[:0]
	g.paths = g.paths[:0]
}

// add appends the record in sl.
func (g *segment) add(sl *usagelog.Slot) {
	g.n++
	g.times = append(g.times, sl.Time)
	g.idx[dictKey] = append(g.idx[dictKey], g.dicts[dictKey].internString(sl.KeyID))
	g.idx[dictEntry] = append(g.idx[dictEntry], g.dicts[dictEntry].internString(sl.EntryID))
	g.idx[dictCode] = append(g.idx[dictCode], g.dicts[dictCode].internString(sl.Code))
	g.idx[dictMethod] = append(g.idx[dictMethod], g.dicts[dictMethod].intern(sl.Method()))
	g.hintIdx = append(g.hintIdx, g.hints.internString(sl.Hint))
	g.status = append(g.status, sl.Status)
	g.lat = append(g.lat, sl.LatencyUS)
	g.ips = append(g.ips, sl.IP)
	g.paths = append(g.paths, sl.Path()...)
	g.pathEnd = append(g.pathEnd, uint32(len(g.paths)))
}

func (g *segment) path(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = g.pathEnd[i-1]
	}
	return g.paths[start:g.pathEnd[i]]
}

func (g *segment) record(i int) usagelog.Record {
	r := usagelog.Record{
		Time:      timeOf(g.times[i]),
		KeyID:     string(g.dicts[dictKey].vals[g.idx[dictKey][i]]),
		Method:    string(g.dicts[dictMethod].vals[g.idx[dictMethod][i]]),
		Path:      string(g.path(i)),
		Status:    int(g.status[i]),
		Code:      string(g.dicts[dictCode].vals[g.idx[dictCode][i]]),
		EntryID:   string(g.dicts[dictEntry].vals[g.idx[dictEntry][i]]),
		LatencyUS: int64(g.lat[i]),
	}
	r.ReportOnly = usagelog.IsReportOnly(r.Status, r.Code)
	if len(g.hintIdx) > i {
		r.SecretHint = string(g.hints.vals[g.hintIdx[i]])
	}
	if a := g.ips[i]; a.IsValid() {
		r.IP = a.String()
	}
	return r
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendColumn appends n integers as a column: one byte giving the width
// w (0 to 8) of the largest, then w planes of n bytes, least significant
// plane first. Planes put bytes of like entropy together, which zstd's
// entropy coder compresses much better than varints, and decode at
// memory speed.
func appendColumn(b []byte, vals []uint64) []byte {
	var all uint64
	for _, v := range vals {
		all |= v
	}
	w := (bits.Len64(all) + 7) / 8
	b = append(b, byte(w))
	for p := range w {
		shift := 8 * p
		for _, v := range vals {
			b = append(b, byte(v>>shift))
		}
	}
	return b
}

// column reads a column of n integers into dst, each at most max.
func (d *decoder) column(dst []uint64, max uint64) []uint64 {
	n := len(dst)
	w := int(d.byte())
	if w > 8 {
		d.fail("column width")
	}
	planes := d.bytes(uint64(w) * uint64(n))
	if d.err != nil {
		return dst
	}
	clear(dst)
	for p := range w {
		shift := 8 * p
		for i, c := range planes[p*n : (p+1)*n] {
			dst[i] |= uint64(c) << shift
		}
	}
	for _, v := range dst {
		if v > max {
			d.fail("column value")
			break
		}
	}
	return dst
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// encodeBody appends the body of g to b. yield, if not nil, is called
// between groups of columns (about 0.1 ms of work each for 4,096 records).
func (g *segment) encodeBody(b []byte, yield func()) []byte {
	pause := func() {
		if yield != nil {
			yield()
		}
	}
	b = binary.AppendUvarint(b, uint64(g.n))
	for i := range g.dicts {
		vals := g.dicts[i].vals
		b = binary.AppendUvarint(b, uint64(len(vals)))
		for _, v := range vals {
			b = appendBytes(b, v)
		}
	}
	pause()
	col := make([]uint64, g.n)
	var prev int64
	if g.n > 0 {
		prev = g.times[0]
	}
	b = binary.AppendVarint(b, prev)
	for i, t := range g.times {
		col[i] = zigzag(t - prev)
		prev = t
	}
	b = appendColumn(b, col)
	for d := range g.idx {
		for i, v := range g.idx[d] {
			col[i] = uint64(v)
		}
		b = appendColumn(b, col)
	}
	pause()
	for i, v := range g.status {
		col[i] = uint64(v)
	}
	b = appendColumn(b, col)
	b = appendColumn(b, g.lat)
	for _, a := range g.ips {
		switch {
		case a.Is4():
			a4 := a.As4()
			b = append(b, 4)
			b = append(b, a4[:]...)
		case a.Is6():
			a16 := a.As16()
			b = append(b, 16)
			b = append(b, a16[:]...)
		default:
			b = append(b, 0)
		}
	}
	pause()
	b = binary.AppendUvarint(b, uint64(len(g.hints.vals)))
	for _, v := range g.hints.vals {
		b = appendBytes(b, v)
	}
	for i, v := range g.hintIdx {
		col[i] = uint64(v)
	}
	b = appendColumn(b, col)
	start := uint32(0)
	for i, end := range g.pathEnd {
		col[i] = uint64(end - start)
		start = end
	}
	b = appendColumn(b, col)
	return append(b, g.paths...)
}

// decodeBody replaces g's records with those in body. g's dictionaries
// and paths then point into body, which must stay unchanged while g is
// used. Invalid input of any kind is an error wrapping store.ErrCorrupt.
func (g *segment) decodeBody(body []byte, version byte) error {
	g.reset()
	d := decoder{b: body}
	n := d.uvarint()
	if n > maxSegmentRecords || n > uint64(len(d.b)) {
		return fmt.Errorf("%w: segment record count", store.ErrCorrupt)
	}
	g.n = int(n)
	for i := range g.dicts {
		c := d.count(1)
		for j := 0; j < c && d.err == nil; j++ {
			g.dicts[i].vals = append(g.dicts[i].vals, d.bytes(d.uvarint()))
		}
		if g.n > 0 && len(g.dicts[i].vals) == 0 {
			d.fail("segment dictionary")
		}
	}
	if d.err != nil {
		return d.err
	}
	t := d.varint()
	g.col = d.column(grow(g.col, g.n), ^uint64(0))
	g.times = grow(g.times, g.n)
	for i, u := range g.col {
		t += unzigzag(u)
		g.times[i] = t
	}
	for k := range g.idx {
		g.col = d.column(g.col, uint64(len(g.dicts[k].vals))-1)
		g.idx[k] = grow(g.idx[k], g.n)
		for i, v := range g.col {
			g.idx[k][i] = uint32(v)
		}
	}
	g.col = d.column(g.col, 0xffff)
	g.status = grow(g.status, g.n)
	for i, v := range g.col {
		g.status[i] = uint16(v)
	}
	g.lat = d.column(grow(g.lat, g.n), ^uint64(0))
	if d.err != nil {
		return d.err
	}
	g.ips = grow(g.ips, g.n)
	for i := range g.ips {
		switch d.byte() {
		case 0:
			g.ips[i] = netip.Addr{}
		case 4:
			if b := d.bytes(4); b != nil {
				g.ips[i] = netip.AddrFrom4([4]byte(b))
			}
		case 16:
			if b := d.bytes(16); b != nil {
				g.ips[i] = netip.AddrFrom16([16]byte(b))
			}
		default:
			d.fail("segment address")
		}
		if d.err != nil {
			return d.err
		}
	}
	if version >= segmentVersion {
		c := d.count(1)
		for j := 0; j < c && d.err == nil; j++ {
			g.hints.vals = append(g.hints.vals, d.bytes(d.uvarint()))
		}
		if g.n > 0 && len(g.hints.vals) == 0 {
			d.fail("segment hint dictionary")
		}
		if d.err != nil {
			return d.err
		}
		g.col = d.column(g.col, uint64(len(g.hints.vals))-1)
		g.hintIdx = grow(g.hintIdx, g.n)
		for i, v := range g.col {
			g.hintIdx[i] = uint32(v)
		}
	}
	g.col = d.column(g.col, usagelog.MaxPath)
	g.pathEnd = grow(g.pathEnd, g.n)
	var end uint64
	for i, l := range g.col {
		end += l
		g.pathEnd[i] = uint32(end)
	}
	if d.err != nil {
		return d.err
	}
	if end != uint64(len(d.b)) {
		return fmt.Errorf("%w: segment paths length", store.ErrCorrupt)
	}
	g.paths = d.b
	return nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// segmentBlock is the size of the zstd blocks (and window) of a segment
// body. A body is compressed one block at a time, so that the writer can
// let checks run between blocks (see logWriter.yield): a 4,096-record
// body (~170 KB) is about 11 blocks of ~0.1 ms each instead of one call
// of 1.5 ms or more. Blocks this small also compress better here (each
// block's entropy tables fit its columns): 8.5x against CSV at
// SpeedDefault vs 8.2x for one SpeedBetterCompression frame, for ~0.8x
// its CPU. Old segments (one frame, any window) decode as before.
const segmentBlock = 16 << 10

var (
	// zstdEncoders are streaming encoders (not safe for concurrent use):
	// the writer uses one at a time, tests and benchmarks theirs.
	zstdEncoders = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(segmentBlock))
		if err != nil {
			panic(err)
		}
		return e
	}}
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxSegmentBody))
		if err != nil {
			panic(err)
		}
		return d
	})
)

// appendWriter is an io.Writer that appends to b.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// compress appends the stored form of body to dst: one zstd frame of
// segmentBlock-sized blocks. yield, if not nil, is called between blocks.
func compress(dst, body []byte, yield func()) []byte {
	e := zstdEncoders.Get().(*zstd.Encoder)
	defer zstdEncoders.Put(e)
	out := &appendWriter{append(dst, segmentVersion)}
	e.ResetContentSize(out, int64(len(body)))
	for len(body) > 0 {
		n := min(len(body), segmentBlock)
		e.Write(body[:n]) // a full block is encoded now; appendWriter never fails
		if body = body[n:]; len(body) > 0 && yield != nil {
			yield()
		}
	}
	e.Close()
	e.Reset(nil)
	return out.b
}

// decompress appends the body of the stored segment v to dst.
func decompress(dst, v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != segmentVersion && v[0] != segmentVersionNoHint {
		return dst, fmt.Errorf("%w: unknown segment format", store.ErrCorrupt)
	}
	out, err := zstdDecoder().DecodeAll(v[1:], dst)
	if err != nil {
		return dst, fmt.Errorf("%w: segment: %w", store.ErrCorrupt, err)
	}
	if len(out)-len(dst) > maxSegmentBody {
		return dst, fmt.Errorf("%w: segment too large", store.ErrCorrupt)
	}
	return out, nil
}

// decodeSegment decodes a stored segment into g, using *buf for the body
// (g points into it afterwards).
func decodeSegment(g *segment, buf *[]byte, v []byte) error {
	body, err := decompress((*buf)[:0], v)
	if err != nil {
		return err
	}
	*buf = body
	return g.decodeBody(body, v[0])
}

// encodeIndex appends the index of g to b.
func (g *segment) encodeIndex(b []byte) []byte {
	b = append(b, indexVersion)
	b = binary.AppendUvarint(b, uint64(g.n))
	lo, hi := g.timeRange()
	b = binary.AppendVarint(b, lo)
	b = binary.AppendVarint(b, hi)
	for _, d := range []int{dictKey, dictMethod} {
		vals := g.dicts[d].vals
		b = binary.AppendUvarint(b, uint64(len(vals)))
		for _, v := range vals {
			b = appendBytes(b, v)
		}
	}
	var seen [8]uint64 // statuses below 512, as a bitmap
	var other []uint16
	for _, st := range g.status {
		if st < 512 {
			seen[st/64] |= 1 << (st % 64)
		} else if !containsStatus(other, st) {
			other = append(other, st)
		}
	}
	var sts []uint16
	for i := 0; i < 512; i++ {
		if seen[i/64]&(1<<(i%64)) != 0 {
			sts = append(sts, uint16(i))
		}
	}
	sts = append(sts, other...)
	b = binary.AppendUvarint(b, uint64(len(sts)))
	for _, st := range sts {
		b = binary.AppendUvarint(b, uint64(st))
	}
	return b
}

func containsStatus(s []uint16, v uint16) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (g *segment) timeRange() (lo, hi int64) {
	for i, t := range g.times {
		if i == 0 || t < lo {
			lo = t
		}
		if i == 0 || t > hi {
			hi = t
		}
	}
	return lo, hi
}

// segIndex is a decoded index; the slices point into the stored value.
type segIndex struct {
	n        int
	min, max int64
	keys     [][]byte
	methods  [][]byte
	statuses []uint16
}

// decodeIndex decodes v into x, reusing x's slices.
func decodeIndex(x *segIndex, v []byte) error {
	d := decoder{b: v}
	if d.byte() != indexVersion {
		return fmt.Errorf("%w: unknown index format", store.ErrCorrupt)
	}
	x.n = int(d.uvarint())
	x.min = d.varint()
	x.max = d.varint()
	x.keys = x.keys[:0]
	for c := d.count(1); c > 0 && d.err == nil; c-- {
		x.keys = append(x.keys, d.bytes(d.uvarint()))
	}
	x.methods = x.methods[:0]
	for c := d.count(1); c > 0 && d.err == nil; c-- {
		x.methods = append(x.methods, d.bytes(d.uvarint()))
	}
	x.statuses = x.statuses[:0]
	for c := d.count(1); c > 0 && d.err == nil; c-- {
		x.statuses = append(x.statuses, uint16(d.uvarint()))
	}
	if d.err != nil {
		return d.err
	}
	return nil
}
