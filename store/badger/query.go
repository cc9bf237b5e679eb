package badgerstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"

	"github.com/dgraph-io/badger/v4"
)

// filter is a validated usagelog.Filter, with the cursor parsed.
type filter struct {
	usagelog.Query
	cursor    position
	hasCursor bool
}

// compile validates f (usagelog's rules) and parses its cursor.
func compile(f usagelog.Filter) (filter, error) {
	q, err := f.Compile()
	c := filter{Query: q}
	if err != nil {
		return c, err
	}
	if f.Cursor != "" {
		p, ok := parseCursor(f.Cursor)
		if !ok {
			return c, usagelog.BadCursor()
		}
		c.cursor, c.hasCursor = p, true
	}
	return c, nil
}

func (f *filter) skip(x *segIndex) bool {
	if f.HasFrom && x.max < f.From || f.HasTo && x.min >= f.To {
		return true
	}
	if f.KeyID != "" && !containsBytes(x.keys, f.KeyID, false) {
		return true
	}
	if f.Method != "" && !containsBytes(x.methods, f.Method, true) {
		return true
	}
	if f.StatusHi != 0 {
		for _, st := range x.statuses {
			if int(st) >= f.StatusLo && int(st) <= f.StatusHi {
				return false
			}
		}
		return true
	}
	return false
}

func containsBytes(list [][]byte, s string, fold bool) bool {
	for _, b := range list {
		if string(b) == s || fold && bytes.EqualFold(b, []byte(s)) {
			return true
		}
	}
	return false
}

// position is a record's place in the log: its segment and its index in
// the segment. Later records have greater positions.
type position struct {
	seg uint64
	i   int
}

const cursorVersion = 1

// The cursor is the position of the last record of a page; the next page
// starts just before it. Positions never change, and new records always
// get greater ones, so a walk neither repeats nor skips records and does
// not see records appended after it began.
func (p position) cursor() string {
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, p.seg)
	b = binary.AppendUvarint(b, uint64(p.i))
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (position, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 3 || b[0] != cursorVersion {
		return position{}, false
	}
	d := decoder{b: b[1:]}
	p := position{seg: d.uvarint()}
	i := d.uvarint()
	if d.err != nil || len(d.b) != 0 || i > maxSegmentRecords {
		return position{}, false
	}
	p.i = int(i)
	return p, true
}

// scan calls fn for every record matching f, newest first, starting just
// before f's cursor, until fn returns false. The segment passed to fn is
// valid only during the call.
func (s *Store) scan(ctx context.Context, f *filter, fn func(g *segment, i int, p position) bool) error {
	done, err := s.reading(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Reverse = true
		opts.Prefix = prefixIndex
		opts.PrefetchSize = 64
		it := txn.NewIterator(opts)
		defer it.Close()
		start := seqKey(prefixIndex, ^uint64(0))
		if f.hasCursor {
			start = seqKey(prefixIndex, f.cursor.seg)
		}
		var (
			x    segIndex
			g    segment
			buf  []byte
			vkey = make([]byte, len(prefixSegment)+8)
		)
		copy(vkey, prefixSegment)
		for it.Seek(start); it.Valid(); it.Next() {
			// Checked per segment so that a cancelled request or Close
			// ends a long export promptly.
			if err := ctx.Err(); err != nil {
				return err
			}
			if s.closed.Load() {
				return store.ErrClosed
			}
			item := it.Item()
			k := item.Key()
			if len(k) != len(prefixIndex)+8 {
				continue
			}
			id := binary.BigEndian.Uint64(k[len(prefixIndex):])
			err := item.Value(func(v []byte) error { return decodeIndex(&x, v) })
			if err != nil {
				return fmt.Errorf("segment %d: %w", id, err)
			}
			if f.skip(&x) {
				continue
			}
			binary.BigEndian.PutUint64(vkey[len(prefixSegment):], id)
			vitem, err := txn.Get(vkey)
			if err != nil {
				// Expired between the index and the data: nothing to see.
				continue
			}
			err = vitem.Value(func(v []byte) error { return decodeSegment(&g, &buf, v) })
			if err != nil {
				return fmt.Errorf("segment %d: %w", id, err)
			}
			end := g.n
			if f.hasCursor && id == f.cursor.seg {
				end = min(end, f.cursor.i)
			}
			if !f.scanSegment(&g, id, end, fn) {
				return nil
			}
		}
		return nil
	})
}

// scanSegment calls fn for the matching records of g before index end,
// newest first; it returns false when fn did.
func (f *filter) scanSegment(g *segment, id uint64, end int, fn func(*segment, int, position) bool) bool {
	key, method := -1, -1
	if f.KeyID != "" {
		if key = g.dicts[dictKey].lookup(f.KeyID); key < 0 {
			return true
		}
	}
	// A method dictionary may hold several spellings ("get", "GET").
	var methods [8]bool
	if f.Method != "" {
		found := false
		for i, v := range g.dicts[dictMethod].vals {
			if bytes.EqualFold(v, []byte(f.Method)) {
				if i >= len(methods) {
					method = -2 // many: compare each record
				} else {
					methods[i] = true
				}
				found = true
			}
		}
		if !found {
			return true
		}
	}
	for i := end - 1; i >= 0; i-- {
		if key >= 0 && g.keyIdx(i) != uint32(key) {
			continue
		}
		if f.Method != "" {
			m := g.methodIdx(i)
			if method == -2 {
				if !bytes.EqualFold(g.dicts[dictMethod].vals[m], []byte(f.Method)) {
					continue
				}
			} else if m >= uint32(len(methods)) || !methods[m] {
				continue
			}
		}
		if f.StatusHi != 0 {
			if st := int(g.statusOf(i)); st < f.StatusLo || st > f.StatusHi {
				continue
			}
		}
		if f.HasCode && string(g.code(i)) != f.Code {
			continue
		}
		if t := g.times[i]; f.HasFrom && t < f.From || f.HasTo && t >= f.To {
			continue
		}
		if (f.HasIP || f.PathPrefix != "") && !f.MatchAddrPath(g.ipOf(i), g.path(i)) {
			continue
		}
		if !fn(g, i, position{id, i}) {
			return false
		}
	}
	return true
}

// QueryLogs returns the records matching f, newest first, f.Limit at a
// time. Newest first means in the reverse of the order AppendLog received
// them. Only written segments are searched: a record becomes visible when
// its segment is written, at most FlushInterval plus one tick (1.25 s by
// default) after AppendLog, or at once after FlushLogs. An invalid filter
// gives a *usagelog.FilterError. Items is never nil.
func (s *Store) QueryLogs(ctx context.Context, f usagelog.Filter) (usagelog.Page, error) {
	cf, err := compile(f)
	if err != nil {
		return usagelog.Page{}, err
	}
	page := usagelog.Page{Items: make([]usagelog.Record, 0, min(cf.Limit, 128))}
	var last position
	more := false
	err = s.scan(ctx, &cf, func(g *segment, i int, p position) bool {
		if len(page.Items) == cf.Limit {
			more = true
			return false
		}
		r := g.record(i)
		r.Node = s.opts.Node
		page.Items = append(page.Items, r)
		last = p
		return true
	})
	if err != nil {
		return usagelog.Page{}, err
	}
	if more {
		page.NextCursor = last.cursor()
	}
	return page, nil
}

// ExportCSV writes every record matching f (f.Limit is ignored; f.Cursor
// is honoured), newest first, to w in usagelog's CSV format, key names
// from names. Memory use does not grow with the number of rows. It
// returns the number of rows written, header excluded.
func (s *Store) ExportCSV(ctx context.Context, w io.Writer, f usagelog.Filter, names usagelog.KeyNames) (int, error) {
	f.Limit = 0
	cf, err := compile(f)
	if err != nil {
		return 0, err
	}
	cw := usagelog.NewCSVWriter(w, names)
	var row usagelog.CSVRow
	var werr error
	node := []byte(s.opts.Node)
	err = s.scan(ctx, &cf, func(g *segment, i int, _ position) bool {
		g.csvRow(&row, i)
		row.Node = node
		werr = cw.WriteRow(&row)
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err == nil {
		err = cw.Flush()
	}
	return cw.Rows(), err
}

// csvRow points r at record i's bytes in g; r.Path is valid until the
// next call (see path).
func (g *segment) csvRow(r *usagelog.CSVRow, i int) {
	*r = usagelog.CSVRow{
		Time:      timeOf(g.times[i]),
		KeyID:     g.key(i),
		IP:        g.ipOf(i),
		Method:    g.method(i),
		Path:      g.path(i),
		Status:    int(g.statusOf(i)),
		Code:      g.code(i),
		EntryID:   g.entry(i),
		Hint:      g.hint(i),
		LatencyUS: g.lat[i],
	}
}

// EntryHits counts, per allowlist entry id, the key's records since since
// that matched that entry, with the newest one's time.
func (s *Store) EntryHits(ctx context.Context, keyID string, since time.Time) (map[string]usagelog.Hits, error) {
	f, err := compile(usagelog.Filter{KeyID: keyID, From: since})
	if err != nil {
		return nil, err
	}
	hits := map[string]usagelog.Hits{}
	err = s.scan(ctx, &f, func(g *segment, i int, _ position) bool {
		id := g.entry(i)
		if len(id) == 0 {
			return true
		}
		h := hits[string(id)]
		h.Count++
		if t := timeOf(g.times[i]); t.After(h.LastSeen) {
			h.LastSeen = t
		}
		hits[string(id)] = h
		return true
	})
	return hits, err
}

// Traffic returns the distinct client addresses of the key's records
// since since that its allowlist decided (usagelog.CountsForAllowlist),
// at most limit of them (the most recently seen), and whether others were
// left out.
func (s *Store) Traffic(ctx context.Context, keyID string, since time.Time, limit int) ([]usagelog.AddrStat, bool, error) {
	f, err := compile(usagelog.Filter{KeyID: keyID, From: since})
	if err != nil {
		return nil, false, err
	}
	limit = min(max(limit, 1), usagelog.MaxTrafficAddrs)
	at := map[netip.Addr]int{}
	var out []usagelog.AddrStat
	truncated := false
	err = s.scan(ctx, &f, func(g *segment, i int, _ position) bool {
		code, ip := g.code(i), g.ipOf(i)
		if !usagelog.CountsForAllowlist(string(code)) || !ip.IsValid() {
			return true
		}
		var kept bool
		out, kept = usagelog.AddTraffic(out, at, limit, ip, timeOf(g.times[i]), int(g.statusOf(i)),
			string(code), g.entry(i))
		truncated = truncated || !kept
		return true
	})
	return out, truncated, err
}
