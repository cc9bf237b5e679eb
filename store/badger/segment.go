package badgerstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"unsafe"

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
// body (version 4):
//
//	uvarint n (records)
//	6 dictionaries (key ids, entry ids, codes, methods, secret hints,
//	    path prefixes): uvarint count, then count strings (uvarint
//	    length, bytes)
//	sources (what a key's checks from one client share): uvarint count
//	    s, then columns of s: key, entry and hint (dictionary indexes),
//	    address families (0, 4 or 16), then the addresses' bytes
//	kinds: uvarint count k, then columns of k: code, method (dictionary
//	    indexes), status
//	times: varint first Unix nanoseconds, then a column of the zigzag
//	    deltas from the previous record (the first is 0)
//	columns of n: source, kind (indexes), latency (microseconds), path
//	    prefix (index: the path up to its last '/'), length of the rest
//	    of the path; then those rests, concatenated
//
// body (versions 2 and 3, still read; 2 is 3 without the hints):
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
// Version 4 names each record's key, entry, hint and address by one
// index into the sources, its code, method and status by one into the
// kinds, and the route part of its path by one into the prefixes: the
// body is less than half of version 3's (zstd's time goes with the bytes
// it reads) and compresses better, which pays for zstd's fastest level
// (see compress).
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
	segmentVersion = 4
	// segmentVersionV3 and segmentVersionNoHint are earlier bodies,
	// still read.
	segmentVersionV3     = 3
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
// dictionaries point into the body it was given. add and decodeBody of
// version 4 fill what version 4 stores (sources, kinds, times,
// latencies, path prefixes and rests); decodeBody of versions 2 and 3
// fills the per-record columns those store (idx, hintIdx, status, ips,
// paths). Read a record's fields through keyIdx, path and the like,
// which work with both.
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

	srcs    []source
	srcIdx  []uint32
	kinds   []kind
	kindIdx []uint32
	// A path is stored as a prefix (up to its last '/', from a
	// dictionary) and the rest: sufs[sufEnd[i-1]:sufEnd[i]].
	prefixes dict
	prefIdx  []uint32
	sufs     []byte
	sufEnd   []uint32
	pathBuf  []byte // path's buffer
	// The writer's lookups: kinds and sources (by content) in this
	// segment, the path prefixes last met (see prefix), sources (see
	// source) kept from segment to segment.
	kindTab   hashTable
	srcTab    hashTable
	prefCache *[prefixCacheSize]prefixSlot
	known     *knownSources
}

// prefixSlot is an entry of the writer's cache of path prefixes: the
// cheap hash of a prefix (see segment.prefix) and 1 + its index in the
// segment's prefixes, 0 if free.
type prefixSlot struct {
	h uint64
	i uint32
}

// prefixCacheSize is the number of path prefixes (routes) the writer's
// cache holds, direct-mapped: more than a segment has of most APIs'.
const prefixCacheSize = 256

// knownSources maps the sources a writer has met, by the addresses of
// their strings and their address, to their strings' canonical ids and
// their index in the current segment. A probe touches a slot of tab and
// one knownSource.
type knownSources struct {
	tab  hashTable
	srcs []knownSource // by tab index
	used []uint32      // indexes with inSeg set
}

type knownSource struct {
	srcStrings
	ip    netip.Addr
	ids   [3]uint32 // of key, entry and hint
	inSeg uint32    // 1 + index in the segment's srcs, 0 if absent
}

// source is what the records of one key from one client share.
type source struct {
	key, entry, hint uint32 // dictionary indexes
	ip               netip.Addr
}

// srcStrings are a source's strings as AppendLog was given them.
type srcStrings struct{ key, entry, hint string }

// kind is a record's outcome: code and method (dictionary indexes) and
// status.
type kind struct {
	code, method uint32
	status       uint16
}

type dict struct {
	vals [][]byte
	m    map[string]uint32 // intern's lookup by content; nil when decoded
	// internString's lookups, kept from segment to segment (see
	// internString).
	known *knownStrings
}

// knownStrings maps the strings a writer's dictionary has met, by
// address, to canonical ids (one per content), and the ids to their
// index in the current segment's dictionary.
type knownStrings struct {
	byAddr hashTable
	strs   []string // by byAddr index
	ids    []uint32 // by byAddr index
	canon  map[string]uint32
	texts  []string // by id
	inSeg  []uint32 // by id: 1 + dictionary index in this segment, 0 if absent
	used   []uint32 // ids with inSeg set
}

// maxKnownStrings bounds the strings a dictionary keeps meeting from
// segment to segment (they stay alive until it is reached and all are
// forgotten: the key ids of deleted keys, say).
const maxKnownStrings = 1 << 16

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

// internString interns s (see knownStrings.id).
func (d *dict) internString(s string) uint32 {
	if d.known == nil {
		d.known = &knownStrings{canon: make(map[string]uint32)}
	}
	return d.indexOf(d.known.id(s))
}

// id returns the canonical id of s. It finds s by its address first,
// among the strings met in this and earlier segments: the check path
// hands over the engine's long-lived strings, so the same key id met
// again costs neither hashing nor reading its bytes, which are cold in
// the engine's memory (map lookups by content of three strings per
// record were the writer's largest cost after zstd). A string at an
// address not met before is looked up by content, so that each text has
// one id.
func (k *knownStrings) id(s string) uint32 {
	h := mix(strAddr(s), 0)
	pos, j := k.byAddr.find(h)
	for ; j >= 0; pos, j = k.byAddr.next(pos, h) {
		if k.strs[j] == s {
			return k.ids[j]
		}
	}
	id, ok := k.canon[s]
	if !ok {
		id = uint32(len(k.texts))
		k.texts = append(k.texts, s)
		k.inSeg = append(k.inSeg, 0)
		k.canon[s] = id
	}
	k.byAddr.insert(pos, h, len(k.strs))
	k.strs = append(k.strs, s)
	k.ids = append(k.ids, id)
	return id
}

// indexOf returns the index in d of the text with canonical id (of
// d.known), adding it if new in this segment.
func (d *dict) indexOf(id uint32) uint32 {
	k := d.known
	if i := k.inSeg[id]; i > 0 {
		return i - 1
	}
	i := uint32(len(d.vals))
	// The text's own bytes, not a copy: vals are only read, and the
	// string is immutable and kept alive by them.
	t := k.texts[id]
	d.vals = append(d.vals, unsafe.Slice(unsafe.StringData(t), len(t)))
	k.inSeg[id] = i + 1
	k.used = append(k.used, id)
	return i
}

func (d *dict) reset() {
	d.vals = d.vals[:0]
	clear(d.m)
	k := d.known
	if k == nil {
		return
	}
	for _, id := range k.used {
		k.inSeg[id] = 0
	}
	k.used = k.used[:0]
}

func (d *dict) tooManyKnown() bool { return d.known != nil && len(d.known.strs) > maxKnownStrings }

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
	g.srcs = g.srcs[:0]
	g.srcIdx = g.srcIdx[:0]
	g.kinds = g.kinds[:0]
	g.kindIdx = g.kindIdx[:0]
	g.kindTab.reset()
	for i := range g.dicts {
		g.dicts[i].reset()
		g.idx[i] = g.idx[i][:0]
	}
	g.hints.reset()
	g.srcTab.reset()
	if g.prefCache != nil {
		clear(g.prefCache[:])
	}
	if k := g.known; k != nil {
		for _, j := range k.used {
			k.srcs[j].inSeg = 0
		}
		k.used = k.used[:0]
	}
	// Forget every known string and source together (sources name
	// strings by id) once there are too many.
	too := g.known != nil && len(g.known.srcs) > maxKnownStrings || g.hints.tooManyKnown()
	for i := range g.dicts {
		too = too || g.dicts[i].tooManyKnown()
	}
	if too {
		g.known = nil
		g.hints.known = nil
		for i := range g.dicts {
			g.dicts[i].known = nil
		}
	}
	g.hintIdx = g.hintIdx[:0]
	g.times = g.times[:0]
	g.status = g.status[:0]
	g.lat = g.lat[:0]
	g.ips = g.ips[:0]
	g.pathEnd = g.pathEnd[:0]
	g.paths = g.paths[:0]
	g.prefixes.reset()
	g.prefIdx = g.prefIdx[:0]
	g.sufs = g.sufs[:0]
	g.sufEnd = g.sufEnd[:0]
}

// add appends the record in sl.
func (g *segment) add(sl *usagelog.Slot) {
	si := g.source(sl)
	ki := g.kind(sl)
	g.n++
	g.times = append(g.times, sl.Time)
	g.srcIdx = append(g.srcIdx, si)
	g.kindIdx = append(g.kindIdx, ki)
	g.lat = append(g.lat, sl.LatencyUS)
	p := sl.Path()
	cut := bytes.LastIndexByte(p, '/') + 1
	g.prefIdx = append(g.prefIdx, g.prefix(sl, cut))
	g.sufs = append(g.sufs, p[cut:]...)
	g.sufEnd = append(g.sufEnd, uint32(len(g.sufs)))
}

// prefix returns the index of sl's path up to cut (its prefix, p),
// adding it if new. The prefixes are few (an API's routes) and met again
// and again, but as bytes of the slot, not long-lived strings: a small
// cache by a cheap hash of p finds most of them with one comparison of
// the bytes, where the map of intern hashed them all first (the
// writer's largest cost per record after zstd).
func (g *segment) prefix(sl *usagelog.Slot, cut int) uint32 {
	if g.prefCache == nil {
		g.prefCache = new([prefixCacheSize]prefixSlot)
	}
	p := sl.PathBuf[:cut]
	// p's length and its first and last 8 bytes, which tell most routes
	// apart, read from the slot's buffer without copying.
	first := binary.LittleEndian.Uint64(sl.PathBuf[:8])
	last := first
	if cut >= 8 {
		last = binary.LittleEndian.Uint64(sl.PathBuf[cut-8 : cut])
	} else {
		first &= 1<<(8*cut) - 1
		last = 0
	}
	h := mix(mix(uint64(cut), first), last)
	c := &g.prefCache[h%prefixCacheSize]
	if c.i > 0 && c.h == h && bytes.Equal(g.prefixes.vals[c.i-1], p) {
		return c.i - 1
	}
	i := g.prefixes.intern(p)
	*c = prefixSlot{h, i + 1}
	return i
}

// source returns the index of sl's source, adding it if new. Sources
// are found by the addresses of their strings (see knownStrings.id) and
// their address, among those met in this and earlier segments, and
// compared by content, so a string met at another address only makes a
// second source equal to the first.
func (g *segment) source(sl *usagelog.Slot) uint32 {
	k := g.known
	if k == nil {
		k = &knownSources{}
		g.known = k
		for _, d := range [...]*dict{&g.dicts[dictKey], &g.dicts[dictEntry], &g.hints} {
			if d.known == nil {
				d.known = &knownStrings{canon: make(map[string]uint32)}
			}
		}
	}
	a16 := sl.IP.As16()
	h := mix(mix(mix(mix(strAddr(sl.KeyID), strAddr(sl.EntryID)), strAddr(sl.Hint)),
		binary.LittleEndian.Uint64(a16[:8])^uint64(sl.IP.BitLen())), binary.LittleEndian.Uint64(a16[8:]))
	pos, j := k.tab.find(h)
	for ; j >= 0; pos, j = k.tab.next(pos, h) {
		// By address, as hashed: a string at another address is
		// another known source (of the same ids, so the same source).
		if ks := &k.srcs[j]; sameString(ks.key, sl.KeyID) && sameString(ks.entry, sl.EntryID) && sameString(ks.hint, sl.Hint) && ks.ip == sl.IP {
			break
		}
	}
	if j < 0 {
		j = len(k.srcs)
		k.tab.insert(pos, h, j)
		k.srcs = append(k.srcs, knownSource{
			srcStrings: srcStrings{sl.KeyID, sl.EntryID, sl.Hint},
			ip:         sl.IP,
			ids:        [3]uint32{g.dicts[dictKey].known.id(sl.KeyID), g.dicts[dictEntry].known.id(sl.EntryID), g.hints.known.id(sl.Hint)},
		})
	}
	ks := &k.srcs[j]
	if ks.inSeg > 0 {
		return ks.inSeg - 1
	}
	src := source{
		key:   g.dicts[dictKey].indexOf(ks.ids[0]),
		entry: g.dicts[dictEntry].indexOf(ks.ids[1]),
		hint:  g.hints.indexOf(ks.ids[2]),
		ip:    ks.ip,
	}
	// By content among this segment's sources, so that strings at new
	// addresses for every record (which the check path does not hand
	// over) still make one source each.
	a16 = src.ip.As16()
	hs := mix(mix(mix(uint64(src.key)<<32|uint64(src.entry), uint64(src.hint)),
		binary.LittleEndian.Uint64(a16[:8])^uint64(src.ip.BitLen())), binary.LittleEndian.Uint64(a16[8:]))
	spos, si := g.srcTab.find(hs)
	for ; si >= 0 && g.srcs[si] != src; spos, si = g.srcTab.next(spos, hs) {
	}
	if si < 0 {
		si = len(g.srcs)
		g.srcs = append(g.srcs, src)
		g.srcTab.insert(spos, hs, si)
	}
	ks.inSeg = uint32(si) + 1
	k.used = append(k.used, uint32(j))
	return uint32(si)
}

// sameString reports whether a and b are the same bytes in memory (as
// strAddr tells them apart: all empty strings are the same).
func sameString(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.StringData(a) == unsafe.StringData(b))
}

// kind returns the index of sl's kind, adding it if new.
func (g *segment) kind(sl *usagelog.Slot) uint32 {
	m := sl.Method()
	// The method's first 8 bytes, read from the slot's buffer.
	mw := binary.LittleEndian.Uint64(sl.MethodBuf[:8])
	if len(m) < 8 {
		mw &= 1<<(8*len(m)) - 1
	}
	h := mix(mix(strAddr(sl.Code), uint64(sl.Status)<<8|uint64(len(m))), mw)
	pos, i := g.kindTab.find(h)
	for ; i >= 0; pos, i = g.kindTab.next(pos, h) {
		k := &g.kinds[i]
		if k.status == sl.Status && string(g.dicts[dictCode].vals[k.code]) == sl.Code && bytes.Equal(g.dicts[dictMethod].vals[k.method], m) {
			return uint32(i)
		}
	}
	i = len(g.kinds)
	g.kinds = append(g.kinds, kind{
		code:   g.dicts[dictCode].internString(sl.Code),
		method: g.dicts[dictMethod].intern(m),
		status: sl.Status,
	})
	g.kindTab.insert(pos, h, i)
	return uint32(i)
}

// strAddr is where s's bytes are, as a hash input (never dereferenced);
// 0 for every empty string, whose address is unspecified.
func strAddr(s string) uint64 {
	if len(s) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.StringData(s))))<<8 ^ uint64(len(s))
}

func mix(h, v uint64) uint64 {
	h ^= v
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// hashTable maps hashes to the indexes of a slice, by open addressing;
// the caller compares the candidates. A slot holds the low 32 bits of
// its hash (where it goes, and a tag that rules out most mismatches
// without reading the entry) and 1 + the index, 0 when free. Its zero
// value is an empty table.
type hashTable struct {
	slots []uint64
	used  int
}

// find returns the first probe position for h and the index there, or
// -1 (pos is then where to insert).
func (t *hashTable) find(h uint64) (pos int, i int) {
	if len(t.slots) == 0 {
		return 0, -1
	}
	return t.at(int(uint32(h))&(len(t.slots)-1), h)
}

// next continues a find after a candidate that did not match.
func (t *hashTable) next(pos int, h uint64) (int, int) {
	return t.at((pos+1)&(len(t.slots)-1), h)
}

func (t *hashTable) at(pos int, h uint64) (int, int) {
	mask := len(t.slots) - 1
	tag := uint64(uint32(h)) << 32
	for ; ; pos = (pos + 1) & mask {
		s := t.slots[pos]
		if s == 0 {
			return pos, -1
		}
		if s&^0xffffffff == tag {
			return pos, int(uint32(s)) - 1
		}
	}
}

// insert records index i of hash h at pos, as returned by the find that
// failed.
func (t *hashTable) insert(pos int, h uint64, i int) {
	if (t.used+1)*2 > len(t.slots) {
		t.grow()
		pos, _ = t.find(h)
		for t.slots[pos] != 0 {
			pos = (pos + 1) & (len(t.slots) - 1)
		}
	}
	t.slots[pos] = uint64(uint32(h))<<32 | uint64(i+1)
	t.used++
}

func (t *hashTable) grow() {
	old := t.slots
	n := max(256, 2*len(old))
	t.slots = make([]uint64, n)
	mask := n - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		pos := int(s>>32) & mask
		for t.slots[pos] != 0 {
			pos = (pos + 1) & mask
		}
		t.slots[pos] = s
	}
}

func (t *hashTable) reset() {
	if t.used > 0 {
		clear(t.slots)
	}
	t.used = 0
}

// The fields of record i, whichever way g holds them: a segment built
// by add or decoded from version 4 names them by source and kind (one
// index each per record), earlier versions column by column. Reading
// them through these instead of expanding every record into columns
// first keeps a query's work on the records it skips small (half of
// decoding a version-4 segment was that expansion).
func (g *segment) bySource() bool { return len(g.srcIdx) == g.n }

func (g *segment) keyIdx(i int) uint32 {
	if g.bySource() {
		return g.srcs[g.srcIdx[i]].key
	}
	return g.idx[dictKey][i]
}

func (g *segment) entryIdx(i int) uint32 {
	if g.bySource() {
		return g.srcs[g.srcIdx[i]].entry
	}
	return g.idx[dictEntry][i]
}

func (g *segment) codeIdx(i int) uint32 {
	if g.bySource() {
		return g.kinds[g.kindIdx[i]].code
	}
	return g.idx[dictCode][i]
}

func (g *segment) methodIdx(i int) uint32 {
	if g.bySource() {
		return g.kinds[g.kindIdx[i]].method
	}
	return g.idx[dictMethod][i]
}

func (g *segment) statusOf(i int) uint16 {
	if g.bySource() {
		return g.kinds[g.kindIdx[i]].status
	}
	return g.status[i]
}

func (g *segment) ipOf(i int) netip.Addr {
	if g.bySource() {
		return g.srcs[g.srcIdx[i]].ip
	}
	return g.ips[i]
}

// hint is record i's secret hint ("" in version 2, which has none).
func (g *segment) hint(i int) []byte {
	switch {
	case g.bySource():
		return g.hints.vals[g.srcs[g.srcIdx[i]].hint]
	case len(g.hintIdx) > i:
		return g.hints.vals[g.hintIdx[i]]
	}
	return nil
}

func (g *segment) key(i int) []byte    { return g.dicts[dictKey].vals[g.keyIdx(i)] }
func (g *segment) entry(i int) []byte  { return g.dicts[dictEntry].vals[g.entryIdx(i)] }
func (g *segment) code(i int) []byte   { return g.dicts[dictCode].vals[g.codeIdx(i)] }
func (g *segment) method(i int) []byte { return g.dicts[dictMethod].vals[g.methodIdx(i)] }

// path is record i's path. By source (see bySource) it is its prefix
// and its rest joined in g's buffer: valid until the next call.
func (g *segment) path(i int) []byte {
	if g.bySource() {
		start := uint32(0)
		if i > 0 {
			start = g.sufEnd[i-1]
		}
		g.pathBuf = append(append(g.pathBuf[:0], g.prefixes.vals[g.prefIdx[i]]...), g.sufs[start:g.sufEnd[i]]...)
		return g.pathBuf
	}
	start := uint32(0)
	if i > 0 {
		start = g.pathEnd[i-1]
	}
	return g.paths[start:g.pathEnd[i]]
}

func (g *segment) record(i int) usagelog.Record {
	r := usagelog.Record{
		Time:       timeOf(g.times[i]),
		KeyID:      string(g.key(i)),
		Method:     string(g.method(i)),
		Path:       string(g.path(i)),
		Status:     int(g.statusOf(i)),
		Code:       string(g.code(i)),
		EntryID:    string(g.entry(i)),
		SecretHint: string(g.hint(i)),
		LatencyUS:  int64(g.lat[i]),
	}
	r.ReportOnly = usagelog.IsReportOnly(r.Status, r.Code)
	if a := g.ipOf(i); a.IsValid() {
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
func appendColumn[T uint16 | uint32 | uint64](b []byte, vals []T) []byte {
	var all T
	for _, v := range vals {
		all |= v
	}
	w := (bits.Len64(uint64(all)) + 7) / 8
	b = append(b, byte(w))
	n := len(vals)
	b = slices.Grow(b, w*n)
	for p := range w {
		plane := b[len(b) : len(b)+n]
		plane = plane[:len(vals)] // no bounds check in the loop
		shift := 8 * p
		for i, v := range vals {
			plane[i] = byte(v >> shift)
		}
		b = b[:len(b)+n]
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

// encodeBody appends the body (version 4) of g, built by add, to b.
// yield, if not nil, is called between columns.
func (g *segment) encodeBody(b []byte, yield func()) []byte {
	// A column of a full segment is tens of µs of work: the writer yields
	// between them (see logWriter.yield).
	pause := func() {
		if yield != nil {
			yield()
		}
	}
	b = binary.AppendUvarint(b, uint64(g.n))
	for _, d := range [...]*dict{&g.dicts[dictKey], &g.dicts[dictEntry], &g.dicts[dictCode], &g.dicts[dictMethod], &g.hints, &g.prefixes} {
		b = binary.AppendUvarint(b, uint64(len(d.vals)))
		for _, v := range d.vals {
			b = appendBytes(b, v)
		}
	}
	pause()
	col := grow(g.col, max(g.n, len(g.srcs)))
	g.col = col
	b = binary.AppendUvarint(b, uint64(len(g.srcs)))
	b = appendFieldColumn(b, col, g.srcs, func(s *source) uint32 { return s.key })
	b = appendFieldColumn(b, col, g.srcs, func(s *source) uint32 { return s.entry })
	b = appendFieldColumn(b, col, g.srcs, func(s *source) uint32 { return s.hint })
	pause()
	for _, src := range g.srcs {
		b = append(b, byte(src.ip.BitLen()/8))
	}
	for _, src := range g.srcs {
		switch a := src.ip; {
		case a.Is4():
			a4 := a.As4()
			b = append(b, a4[:]...)
		case a.Is6():
			a16 := a.As16()
			b = append(b, a16[:]...)
		}
	}
	pause()
	b = binary.AppendUvarint(b, uint64(len(g.kinds)))
	b = appendFieldColumn(b, col, g.kinds, func(k *kind) uint32 { return k.code })
	b = appendFieldColumn(b, col, g.kinds, func(k *kind) uint32 { return k.method })
	b = appendFieldColumn(b, col, g.kinds, func(k *kind) uint16 { return k.status })
	pause()
	col = col[:g.n]
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
	pause()
	b = appendColumn(b, g.srcIdx)
	pause()
	b = appendColumn(b, g.kindIdx)
	pause()
	b = appendColumn(b, g.lat)
	pause()
	b = appendColumn(b, g.prefIdx)
	pause()
	start := uint32(0)
	for i, end := range g.sufEnd {
		col[i] = uint64(end - start)
		start = end
	}
	b = appendColumn(b, col)
	return append(b, g.sufs...)
}

// decodeBody replaces g's records with those in body, of format version.
// g's dictionaries and paths then point into body, which must stay
// unchanged while g is used. Invalid input of any kind is an error
// wrapping store.ErrCorrupt.
func (g *segment) decodeBody(body []byte, version byte) error {
	if version < segmentVersion {
		return g.decodeBodyV3(body, version)
	}
	g.reset()
	d := decoder{b: body}
	n := d.uvarint()
	if n > maxSegmentRecords || n > uint64(len(d.b)) {
		return fmt.Errorf("%w: segment record count", store.ErrCorrupt)
	}
	g.n = int(n)
	for _, dc := range [...]*dict{&g.dicts[dictKey], &g.dicts[dictEntry], &g.dicts[dictCode], &g.dicts[dictMethod], &g.hints, &g.prefixes} {
		c := d.count(1)
		for j := 0; j < c && d.err == nil; j++ {
			dc.vals = append(dc.vals, d.bytes(d.uvarint()))
		}
		if g.n > 0 && len(dc.vals) == 0 {
			d.fail("segment dictionary")
		}
	}
	if d.err != nil {
		return d.err
	}
	ns := d.uvarint()
	if ns > n || (n > 0) != (ns > 0) {
		return fmt.Errorf("%w: segment source count", store.ErrCorrupt)
	}
	g.col = grow(g.col, g.n)
	g.srcs = grow(g.srcs, int(ns))
	readFieldColumn(&d, g.col, g.srcs, len(g.dicts[dictKey].vals), func(s *source, v uint64) { s.key = uint32(v) })
	readFieldColumn(&d, g.col, g.srcs, len(g.dicts[dictEntry].vals), func(s *source, v uint64) { s.entry = uint32(v) })
	readFieldColumn(&d, g.col, g.srcs, len(g.hints.vals), func(s *source, v uint64) { s.hint = uint32(v) })
	fams := d.bytes(ns)
	for i, f := range fams {
		switch f {
		case 0:
			g.srcs[i].ip = netip.Addr{}
		case 4:
			if a := d.bytes(4); a != nil {
				g.srcs[i].ip = netip.AddrFrom4([4]byte(a))
			}
		case 16:
			if a := d.bytes(16); a != nil {
				g.srcs[i].ip = netip.AddrFrom16([16]byte(a))
			}
		default:
			d.fail("segment address")
		}
		if d.err != nil {
			return d.err
		}
	}
	nk := d.uvarint()
	if nk > n || (n > 0) != (nk > 0) {
		return fmt.Errorf("%w: segment kind count", store.ErrCorrupt)
	}
	g.kinds = grow(g.kinds, int(nk))
	readFieldColumn(&d, g.col, g.kinds, len(g.dicts[dictCode].vals), func(k *kind, v uint64) { k.code = uint32(v) })
	readFieldColumn(&d, g.col, g.kinds, len(g.dicts[dictMethod].vals), func(k *kind, v uint64) { k.method = uint32(v) })
	readFieldColumn(&d, g.col, g.kinds, 0x10000, func(k *kind, v uint64) { k.status = uint16(v) })
	if d.err != nil {
		return d.err
	}
	t := d.varint()
	d.column(g.col, ^uint64(0))
	g.times = grow(g.times, g.n)
	for i, u := range g.col {
		t += unzigzag(u)
		g.times[i] = t
	}
	d.column(g.col, ns-1)
	g.srcIdx = grow(g.srcIdx, g.n)
	for i, v := range g.col {
		g.srcIdx[i] = uint32(v)
	}
	d.column(g.col, nk-1)
	g.kindIdx = grow(g.kindIdx, g.n)
	for i, v := range g.col {
		g.kindIdx[i] = uint32(v)
	}
	g.lat = d.column(grow(g.lat, g.n), ^uint64(0))
	d.column(g.col, uint64(len(g.prefixes.vals))-1)
	g.prefIdx = grow(g.prefIdx, g.n)
	for i, v := range g.col {
		g.prefIdx[i] = uint32(v)
	}
	d.column(g.col, usagelog.MaxPath)
	if d.err != nil {
		return d.err
	}
	g.sufEnd = grow(g.sufEnd, g.n)
	var end uint64
	for i, l := range g.col {
		if len(g.prefixes.vals[g.prefIdx[i]])+int(l) > usagelog.MaxPath {
			return fmt.Errorf("%w: segment path length", store.ErrCorrupt)
		}
		end += l
		g.sufEnd[i] = uint32(end)
	}
	if end != uint64(len(d.b)) {
		return fmt.Errorf("%w: segment paths length", store.ErrCorrupt)
	}
	g.sufs = d.b
	return nil
}

// decodeBodyV3 is decodeBody for versions 2 and 3.
func (g *segment) decodeBodyV3(body []byte, version byte) error {
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
	if version >= segmentVersionV3 {
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

// appendFieldColumn appends the column of one field of xs, gathered
// into scratch (at least len(xs) long) by field.
func appendFieldColumn[T any, F uint16 | uint32](b []byte, scratch []uint64, xs []T, field func(*T) F) []byte {
	c := scratch[:len(xs)]
	for i := range xs {
		c[i] = uint64(field(&xs[i]))
	}
	return appendColumn(b, c)
}

// readFieldColumn reads a column of len(xs) values below limit into
// scratch (at least len(xs) long) and sets each into its x by set: the
// inverse of appendFieldColumn.
func readFieldColumn[T any](d *decoder, scratch []uint64, xs []T, limit int, set func(*T, uint64)) {
	c := scratch[:len(xs)]
	d.column(c, uint64(limit)-1)
	for i, v := range c {
		set(&xs[i], v)
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// segmentBlock is the size of the zstd blocks (and window) of a segment
// body. A body is compressed one block at a time, so that the writer can
// let checks run between blocks (see logWriter.yield): a 16,384-record
// body (~330 KB) is about 20 blocks of ~0.1 ms each instead of one call
// of several milliseconds. Blocks this small also compress better here
// (each block's entropy tables fit its columns): 8.5x against CSV at
// SpeedDefault vs 8.2x for one SpeedBetterCompression frame, for ~0.8x
// its CPU; 32 KiB blocks store ~5 % fewer bytes for ~2 % more of
// zstd's CPU and twice as long a slice. Old segments (one frame, any
// window) decode as before.
const segmentBlock = 16 << 10

var (
	// zstdEncoders are streaming encoders (not safe for concurrent use):
	// the writer uses one at a time, tests and benchmarks theirs.
	zstdEncoders = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
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
	if len(v) == 0 || v[0] != segmentVersion && v[0] != segmentVersionV3 && v[0] != segmentVersionNoHint {
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
	statuses := g.status
	if len(g.kindIdx) == g.n {
		// Built by add or decoded from version 4: each status is in a
		// kind, the kinds in the order their first records came.
		statuses = statuses[:0:0]
		for _, k := range g.kinds {
			statuses = append(statuses, k.status)
		}
	}
	for _, st := range statuses {
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
