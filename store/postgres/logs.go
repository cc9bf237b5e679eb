package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

// logWriter is the ring, whose pending records are those taken from it
// and not yet written, failed or dropped (the batch being written and the
// spooled ones), and the goroutine that writes batches of it with COPY.
type logWriter struct {
	s *Store

	ring     usagelog.Ring
	flushReq chan chan error
	// spoolMu guards the spool's counts that Spooled reads.
	spoolMu sync.Mutex

	partitions atomic.Int64
	finalErr   error

	usedMu   sync.RWMutex
	lastUsed map[string]int64

	// Owned by the writer goroutine.
	batch   []usagelog.Slot
	copyBuf []byte         // the batch in COPY's binary format
	parts   map[int64]bool // days (Unix day numbers) with a partition
	spool   *spool
	// downUntil: after a failure to reach the database, batches go
	// straight to the spool until then, so that an unreachable server
	// costs one connection attempt per second, not one per batch.
	downUntil       time.Time
	lastMnt         time.Time
	lastUsedRefresh time.Time
}

func (w *logWriter) init(ctx context.Context, s *Store) error {
	w.s = s
	w.ring.Init(s.opts.LogBuffer, min(s.opts.BatchRecords, s.opts.LogBuffer/2))
	w.batch = make([]usagelog.Slot, 0, s.opts.BatchRecords)
	w.flushReq = make(chan chan error)
	w.parts = make(map[int64]bool)
	w.lastUsed = make(map[string]int64)
	if s.opts.SpoolDir != "" {
		sp, err := openSpool(filepath.Join(s.opts.SpoolDir, "usage-log.spool"), s.opts.SpoolMaxBytes)
		if err != nil {
			return err
		}
		w.spool = sp
		w.ring.AddPending(sp.records)
	}
	// Partitions and last-used times at start; an error here is not fatal
	// (the writer retries), but Open just succeeded in connecting.
	w.maintain(ctx, time.Now())
	return nil
}

func (w *logWriter) closeSpool() {
	if w.spool != nil {
		w.spool.f.Close()
	}
}

// AppendLog buffers one usage-log record. It never blocks on I/O and
// does not allocate; when the ring is full (or the store is closed) the
// record is dropped and counted in LogStats.Dropped. It copies e's
// borrowed bytes and does not retain e. Safe for concurrent use.
func (s *Store) AppendLog(e *usagelog.Entry) { s.logs.ring.Append(e, clampTime(e.Time)) }

// FlushLogs writes every buffered record now. It returns an error if some
// could not be written: spooled for later (wrapping store.ErrUnavailable) or
// lost (counted in LogStats.WriteErrors); or store.ErrClosed.
func (s *Store) FlushLogs() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	ch := make(chan error, 1)
	select {
	case s.logs.flushReq <- ch:
		return <-ch
	case <-s.stop:
		return store.ErrClosed
	}
}

// LogStats returns this daemon's usage-log counters: Queued in the ring,
// InSegment taken from it and not yet in the database (the batch being
// written and the spooled records), Written, WriteErrors and Dropped
// (queued + in segment + written + write errors + dropped = appended);
// Segments is the number of day partitions. Safe for concurrent use.
func (s *Store) LogStats() usagelog.Stats {
	st := s.logs.ring.Stats()
	st.Segments = int(s.logs.partitions.Load())
	return st
}

// Spooled returns the number of records and bytes in the spool file.
func (s *Store) Spooled() (records int, bytes int64) {
	w := &s.logs
	w.spoolMu.Lock()
	defer w.spoolMu.Unlock()
	if w.spool == nil {
		return 0, 0
	}
	return w.spool.records, w.spool.size
}

// LastUsed returns the time of the newest written usage-log record of
// keyID from any daemon of the fleet (as of the last refresh, at most 5 s
// old for other daemons' records; at once for this daemon's), or the zero
// time. Records not yet written do not count.
func (s *Store) LastUsed(keyID string) time.Time {
	w := &s.logs
	w.usedMu.RLock()
	t, ok := w.lastUsed[keyID]
	w.usedMu.RUnlock()
	if !ok {
		return time.Time{}
	}
	return time.Unix(0, t).UTC()
}

func (w *logWriter) run() {
	defer w.s.wg.Done()
	interval := w.s.opts.FlushInterval
	tick := time.NewTicker(max(interval, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-w.s.stop:
			// Records in the spool are kept for the next Open: not an
			// error of Close.
			if err := w.flush(); err != nil && !(w.spool != nil && errors.Is(err, store.ErrUnavailable)) {
				w.finalErr = err
			}
			return
		case ch := <-w.flushReq:
			ch <- w.flush()
		case <-w.ring.Notify():
			w.drain()
		case now := <-tick.C:
			w.drain()
			if w.spool != nil && w.spool.records > 0 {
				w.replay()
			}
			due := now.Sub(w.lastMnt) >= w.s.opts.MaintenanceInterval || now.Sub(w.lastUsedRefresh) >= 5*time.Second
			if due && !now.Before(w.downUntil) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				w.maintain(ctx, now)
				cancel()
			}
		}
	}
}

// flush drains the ring and writes the spool, and returns the first error
// of those writes, or an store.ErrUnavailable error while records stay spooled.
func (w *logWriter) flush() error {
	err := w.drain()
	if w.spool != nil && w.spool.records > 0 {
		w.replay()
		if err == nil && w.spool.records > 0 {
			err = fmt.Errorf("store: %d usage-log records spooled until the database answers: %w", w.spool.records, store.ErrUnavailable)
		}
	}
	return err
}

// drain writes the ring's records in batches, at most one ring's worth
// per call so that a saturating producer cannot starve Close.
func (w *logWriter) drain() error {
	var first error
	for budget := w.ring.Cap(); budget > 0; {
		w.batch = w.batch[:0]
		k, _ := w.ring.Take(min(cap(w.batch), budget), func(sl *usagelog.Slot) { w.batch = append(w.batch, *sl) })
		budget -= k
		if k == 0 {
			break
		}
		if err := w.writeBatch(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// writeBatch writes w.batch: after the spool (oldest first) if it holds
// records, else into the spool too when the database is unavailable.
func (w *logWriter) writeBatch() error {
	n := len(w.batch)
	if w.spool != nil && w.spool.records > 0 {
		w.replay()
	}
	var err error
	if w.spool == nil || w.spool.records == 0 && !time.Now().Before(w.downUntil) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = w.copy(ctx, w.batch)
		if transient(err) {
			err = w.copy(ctx, w.batch) // once more: nothing was written
		}
		cancel()
		if err == nil {
			w.ring.Settle(n, 0, 0)
			w.s.setUp(true, nil)
			return nil
		}
		if unavailable(err) {
			w.downUntil = time.Now().Add(time.Second)
		}
		if !unavailable(err) || w.spool == nil {
			w.ring.Settle(0, n, 0)
			err = fmt.Errorf("store: write usage log: %w", w.s.wrap(err))
			w.s.log.Error("store: usage-log records lost", "records", n, "err", err)
			return err
		}
	}
	w.spoolMu.Lock()
	kept, serr := w.spool.append(w.batch)
	w.spoolMu.Unlock()
	w.ring.Settle(0, 0, n-kept)
	if serr != nil {
		w.s.log.Error("store: usage-log spool", "err", serr)
	}
	if n > kept {
		w.s.log.Warn("store: usage-log spool full; records dropped", "records", n-kept)
	}
	if err == nil {
		err = store.ErrUnavailable
	}
	return fmt.Errorf("store: usage log spooled until the database answers: %w", w.s.wrap(err))
}

// replay writes the spool's frames, oldest first, until one fails; a
// frame is one transaction, so none is written twice.
func (w *logWriter) replay() {
	sp := w.spool
	if time.Now().Before(w.downUntil) {
		return
	}
	for sp.records > 0 {
		recs, err := sp.peek()
		if err != nil {
			w.s.log.Error("store: usage-log spool unreadable; its records are lost", "records", sp.records, "err", err)
			w.ring.Settle(0, sp.records, 0)
			w.spoolMu.Lock()
			sp.reset()
			w.spoolMu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = w.copy(ctx, recs)
		cancel()
		if err != nil {
			if !unavailable(err) {
				w.s.log.Error("store: usage-log spooled records lost", "records", len(recs), "err", err)
				w.ring.Settle(0, len(recs), 0)
				w.spoolMu.Lock()
				sp.advance(len(recs))
				w.spoolMu.Unlock()
				continue
			}
			w.downUntil = time.Now().Add(time.Second)
			return
		}
		w.ring.Settle(len(recs), 0, 0)
		w.spoolMu.Lock()
		sp.advance(len(recs))
		w.spoolMu.Unlock()
	}
}

// transient: a deadlock or serialization failure, after which the
// transaction was rolled back and may simply be run again.
func transient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "40")
}

const dayNS = int64(24 * time.Hour)

// Record times are kept within the filter's bounds (1678 to 2262): a zero
// or absurd time would otherwise name a partition PostgreSQL cannot bound
// (time.Time{}.UnixNano() is not a real instant). Such a record is stored
// at the nearest bound.
var minTimeNS, maxTimeNS = usagelog.MinFilterTime.UnixNano(), usagelog.MaxFilterTime.UnixNano() - dayNS

func clampTime(t time.Time) int64 {
	switch {
	case t.Before(usagelog.MinFilterTime):
		return minTimeNS
	case t.UnixNano() > maxTimeNS || t.After(usagelog.MaxFilterTime):
		return maxTimeNS
	}
	return t.UnixNano()
}

func dayOf(ns int64) int64 {
	d := ns / dayNS
	if ns < 0 && ns%dayNS != 0 {
		d--
	}
	return d
}

func partName(day int64) string {
	return "usage_log_" + time.Unix(day*86400, 0).UTC().Format("20060102")
}

// ensurePartition creates the partition of day if missing; concurrent
// daemons serialise on an advisory lock so that only one creates it.
func (w *logWriter) ensurePartition(ctx context.Context, day int64) error {
	if w.parts[day] {
		return nil
	}
	err := pgx.BeginFunc(ctx, w.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock+1)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF usage_log FOR VALUES FROM (%d) TO (%d)",
			partName(day), day*dayNS, (day+1)*dayNS))
		return err
	})
	if err == nil {
		w.parts[day] = true
	}
	return err
}

// copy writes recs with COPY and the keys' last-used times, in one
// transaction.
func (w *logWriter) copy(ctx context.Context, recs []usagelog.Slot) error {
	var lastDay int64 = -1 << 62
	for i := range recs {
		if d := dayOf(recs[i].Time); d != lastDay {
			if err := w.ensurePartition(ctx, d); err != nil {
				return err
			}
			lastDay = d
		}
	}
	newest := make(map[string]int64)
	for i := range recs {
		if r := &recs[i]; r.KeyID != "" && r.Time > newest[r.KeyID] {
			newest[r.KeyID] = r.Time
		}
	}
	err := pgx.BeginFunc(ctx, w.s.pool, func(tx pgx.Tx) error {
		// Usage-log batches do not wait for the WAL flush: like the
		// Badger store's segments (written without fsync), a crash of
		// the database server may lose the last moments of records, and
		// a busy server is not slowed down by a flush per batch. Key
		// changes keep the server's setting.
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		w.copyBuf = appendCopy(w.copyBuf[:0], recs, w.s.opts.Node)
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(w.copyBuf), copySQL)
		if err != nil || len(newest) == 0 {
			return err
		}
		// In key order, so that daemons upserting overlapping keys at
		// once take the row locks in one order and cannot deadlock.
		ids := make([]string, 0, len(newest))
		for k := range newest {
			ids = append(ids, k)
		}
		slices.Sort(ids)
		times := make([]int64, len(ids))
		for i, k := range ids {
			times[i] = newest[k]
		}
		_, err = tx.Exec(ctx, `INSERT INTO last_used (key_id, time_ns) SELECT * FROM unnest($1::text[], $2::bigint[])
			ON CONFLICT (key_id) DO UPDATE SET time_ns = greatest(last_used.time_ns, excluded.time_ns)`, ids, times)
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "no partition of relation") {
			// Dropped by another daemon's retention meanwhile: forget.
			w.parts = make(map[int64]bool)
		}
		return err
	}
	w.usedMu.Lock()
	for k, t := range newest {
		if t > w.lastUsed[k] {
			w.lastUsed[k] = t
		}
	}
	w.usedMu.Unlock()
	return nil
}

// copySQL is the COPY of appendCopy's rows.
const copySQL = "COPY usage_log (time_ns, node, key_id, entry_id, ip, method, path, status, code, latency_us, secret_hint) FROM STDIN (FORMAT binary)"

// appendCopy appends recs to b in PostgreSQL's binary COPY format, in
// copySQL's columns: straight from the slots, without the boxing of
// every value that pgx's CopyFrom needs (11 interface values a row),
// which cost the writer about as much CPU as the server's inserts. Text
// columns are sent as their bytes, as pgx does (the server checks their
// encoding).
func appendCopy(b []byte, recs []usagelog.Slot, node string) []byte {
	b = append(b, "PGCOPY\n\xff\r\n\x00"...)
	b = binary.BigEndian.AppendUint32(b, 0) // flags
	b = binary.BigEndian.AppendUint32(b, 0) // header extension length
	for i := range recs {
		r := &recs[i]
		b = binary.BigEndian.AppendUint16(b, 11)
		b = appendInt8(b, r.Time)
		b = appendBytes(b, node)
		b = appendBytes(b, r.KeyID)
		b = appendBytes(b, r.EntryID)
		// ip: its text form, written in place after a length to fill in.
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		if r.IP.IsValid() {
			b = r.IP.AppendTo(b)
		}
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		b = appendBytes(b, r.Method())
		b = appendBytes(b, r.Path())
		b = binary.BigEndian.AppendUint32(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(r.Status))
		b = appendBytes(b, r.Code)
		b = appendInt8(b, int64(r.LatencyUS))
		b = appendBytes(b, r.Hint)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff) // trailer: -1
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendBytes[T string | []byte](b []byte, v T) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// maintain creates the partitions of today and the next two days, drops
// those past retention, and refreshes last-used times from the fleet.
func (w *logWriter) maintain(ctx context.Context, now time.Time) {
	w.lastUsedRefresh = now
	if err := w.refreshLastUsed(ctx); err != nil {
		w.s.log.Debug("store: refreshing last-used times", "err", err)
	}
	if now.Sub(w.lastMnt) < w.s.opts.MaintenanceInterval && !w.lastMnt.IsZero() {
		return
	}
	w.lastMnt = now
	today := dayOf(now.UnixNano())
	for d := today; d <= today+2; d++ {
		if err := w.ensurePartition(ctx, d); err != nil {
			w.s.log.Warn("store: creating usage-log partitions", "err", err)
			return
		}
	}
	if n, err := w.expire(ctx, now); err != nil {
		w.s.log.Warn("store: usage-log retention", "err", err)
	} else if n > 0 {
		w.s.log.Info("store: dropped usage-log partitions", "partitions", n)
	}
}

// expire drops the partitions whose every record is older than Retention
// at now, and counts the rest.
func (w *logWriter) expire(ctx context.Context, now time.Time) (int, error) {
	rows, err := w.s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'usage_log'::regclass`)
	if err != nil {
		return 0, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	cutoff := now.Add(-w.s.Retention()).UnixNano()
	dropped := 0
	for _, name := range names {
		t, err := time.Parse("20060102", strings.TrimPrefix(name, "usage_log_"))
		if err != nil {
			continue
		}
		day := t.Unix() / 86400
		if (day+1)*dayNS > cutoff {
			continue
		}
		if _, err := w.s.pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			return dropped, err
		}
		delete(w.parts, day)
		dropped++
	}
	w.partitions.Store(int64(len(names) - dropped))
	return dropped, nil
}

func (w *logWriter) refreshLastUsed(ctx context.Context) error {
	rows, err := w.s.pool.Query(ctx, "SELECT key_id, time_ns FROM last_used")
	if err != nil {
		return err
	}
	defer rows.Close()
	m := make(map[string]int64)
	for rows.Next() {
		var k string
		var t int64
		if err := rows.Scan(&k, &t); err != nil {
			return err
		}
		m[k] = t
	}
	if err := rows.Err(); err != nil {
		return err
	}
	w.usedMu.Lock()
	for k, t := range w.lastUsed {
		if t > m[k] {
			m[k] = t
		}
	}
	w.lastUsed = m
	w.usedMu.Unlock()
	return nil
}

// spool is the bounded file of records written during an outage: frames
// of [uint32 length][uint32 records][records], appended; replay reads
// from off and truncates the file once everything is written.
type spool struct {
	f       *os.File
	max     int64
	size    int64 // bytes in the file
	off     int64 // start of the first unwritten frame
	records int   // records from off on
	buf     []byte
	frame   int64 // length of the frame peek returned
	recs    []usagelog.Slot
}

func openSpool(path string, max int64) (*spool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: usage-log spool: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: usage-log spool: %w", err)
	}
	sp := &spool{f: f, max: max}
	// Count what a previous run left; a torn last frame is cut off.
	r := bufio.NewReader(f)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		if _, err := r.Discard(int(n)); err != nil {
			break
		}
		sp.size += 8 + n
		sp.records += int(binary.BigEndian.Uint32(hdr[4:]))
	}
	if err := f.Truncate(sp.size); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: usage-log spool: %w", err)
	}
	return sp, nil
}

// append adds as many of recs as fit under max as one frame and returns
// how many it kept.
func (sp *spool) append(recs []usagelog.Slot) (int, error) {
	b := sp.buf[:0]
	b = append(b, make([]byte, 8)...)
	kept := 0
	for i := range recs {
		before := len(b)
		b = appendSlot(b, &recs[i])
		if sp.size+int64(len(b)) > sp.max {
			b = b[:before]
			break
		}
		kept++
	}
	sp.buf = b
	if kept == 0 {
		return 0, nil
	}
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-8))
	binary.BigEndian.PutUint32(b[4:8], uint32(kept))
	if _, err := sp.f.WriteAt(b, sp.size); err != nil {
		return 0, err
	}
	sp.size += int64(len(b))
	sp.records += kept
	return kept, nil
}

// peek reads the first unwritten frame; its slots are valid until the
// next peek.
func (sp *spool) peek() ([]usagelog.Slot, error) {
	var hdr [8]byte
	if _, err := sp.f.ReadAt(hdr[:], sp.off); err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(hdr[:4]))
	count := int(binary.BigEndian.Uint32(hdr[4:]))
	body := make([]byte, n)
	if _, err := sp.f.ReadAt(body, sp.off+8); err != nil {
		return nil, err
	}
	sp.recs = sp.recs[:0]
	for len(body) > 0 {
		var sl usagelog.Slot
		var ok bool
		if body, ok = readSlot(body, &sl); !ok {
			return nil, errors.New("damaged frame")
		}
		sp.recs = append(sp.recs, sl)
	}
	if len(sp.recs) != count {
		return nil, errors.New("damaged frame")
	}
	sp.frame = 8 + n
	return sp.recs, nil
}

// advance marks the frame peek returned (of n records) written.
func (sp *spool) advance(n int) {
	sp.off += sp.frame
	sp.records -= n
	if sp.off >= sp.size {
		sp.reset()
	}
}

func (sp *spool) reset() {
	sp.f.Truncate(0)
	sp.size, sp.off, sp.records = 0, 0, 0
}

func appendSlot(b []byte, s *usagelog.Slot) []byte {
	b = binary.AppendVarint(b, s.Time)
	b = binary.AppendUvarint(b, s.LatencyUS)
	for _, v := range [...]string{s.KeyID, s.EntryID, s.Code, s.Hint} {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	ip, _ := s.IP.MarshalBinary()
	b = append(b, byte(len(ip)))
	b = append(b, ip...)
	b = binary.AppendUvarint(b, uint64(s.Status))
	b = append(b, s.MethodLen)
	b = append(b, s.Method()...)
	b = binary.AppendUvarint(b, uint64(s.PathLen))
	return append(b, s.Path()...)
}

func readSlot(b []byte, s *usagelog.Slot) ([]byte, bool) {
	var n int
	if s.Time, n = binary.Varint(b); n <= 0 {
		return nil, false
	}
	b = b[n:]
	if s.LatencyUS, n = binary.Uvarint(b); n <= 0 {
		return nil, false
	}
	b = b[n:]
	str := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return "", false
		}
		v := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return v, true
	}
	var ok bool
	if s.KeyID, ok = str(); !ok {
		return nil, false
	}
	if s.EntryID, ok = str(); !ok {
		return nil, false
	}
	if s.Code, ok = str(); !ok {
		return nil, false
	}
	if s.Hint, ok = str(); !ok {
		return nil, false
	}
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, false
	}
	if err := s.IP.UnmarshalBinary(b[1 : 1+int(b[0])]); err != nil {
		return nil, false
	}
	b = b[1+int(b[0]):]
	st, n := binary.Uvarint(b)
	if n <= 0 || st > 0xffff {
		return nil, false
	}
	s.Status = uint16(st)
	b = b[n:]
	if len(b) < 1 || int(b[0]) > len(s.MethodBuf) || len(b) < 1+int(b[0]) {
		return nil, false
	}
	s.MethodLen = uint8(copy(s.MethodBuf[:], b[1:1+int(b[0])]))
	b = b[1+int(b[0]):]
	pl, n := binary.Uvarint(b)
	if n <= 0 || pl > uint64(len(s.PathBuf)) || uint64(len(b)-n) < pl {
		return nil, false
	}
	s.PathLen = uint16(copy(s.PathBuf[:], b[n:n+int(pl)]))
	return b[n+int(pl):], true
}
