package badgerstore

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"

	"github.com/dgraph-io/badger/v4"
)

// logWriter is the usage-log buffer (a usagelog.Ring, whose pending
// records are those taken into the current segment and not yet written
// or failed) and the background goroutine that drains it into segments.
type logWriter struct {
	s *Store

	ring     usagelog.Ring
	flushReq chan chan error

	segments atomic.Int64
	finalErr error

	usedMu sync.RWMutex
	// lastUsed holds per key the newest written record's time (last)
	// and the time last stored for it (saved, see saveLastUsed).
	lastUsed map[string]*usedTimes
	// usedLoaded is set once loadLastUsed has read the stored times.
	usedLoaded atomic.Bool

	// Owned by the writer goroutine.
	nextSeg  uint64
	cur      segment
	curStart time.Time
	// sliceStart is when the writer's current slice of work began
	// (see yield).
	sliceStart time.Time
	body       []byte
	val, idx   []byte // the stored forms of the segment being written
	lastErr    error
	keyMax     []int64
	// unsaved holds the last-used times not stored yet (see
	// saveLastUsed), toSave those to store now.
	unsaved map[string]int64
	toSave  []usedTime
}

// usedTimes is a key's entry in lastUsed, by pointer so that the writer
// updates it without allocating the key again.
type usedTimes struct {
	key         string
	last, saved int64
}

// usedTime is a key's last-used time to store.
type usedTime struct {
	key string
	t   int64
}

func (w *logWriter) init(s *Store) {
	w.s = s
	w.ring.Init(s.opts.LogBuffer, min(s.opts.SegmentRecords, s.opts.LogBuffer/2, notifyRecords))
	w.flushReq = make(chan chan error)
	w.unsaved = make(map[string]int64)
}

// load reads the segment counters at Open (the last-used times follow,
// in loadLastUsed).
func (w *logWriter) load(txn *badger.Txn) error {
	w.lastUsed = make(map[string]*usedTimes)
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefixIndex
	it := txn.NewIterator(opts)
	var n int64
	for it.Rewind(); it.Valid(); it.Next() {
		n++
		k := it.Item().Key()
		if len(k) == len(prefixIndex)+8 {
			w.nextSeg = binary.BigEndian.Uint64(k[len(prefixIndex):]) + 1
		}
	}
	it.Close()
	w.segments.Store(n)
	// Segment values outlive their index until their bucket is dropped
	// (see expireLogs): never reuse their ids.
	opts.Prefix = prefixSegment
	opts.Reverse = true
	it = txn.NewIterator(opts)
	if it.Seek(seqKey(prefixSegment, ^uint64(0))); it.Valid() {
		if k := it.Item().Key(); len(k) == len(prefixSegment)+8 {
			w.nextSeg = max(w.nextSeg, binary.BigEndian.Uint64(k[len(prefixSegment):])+1)
		}
	}
	it.Close()

	return nil
}

// loadLastUsed reads the stored last-used times into w.lastUsed while the
// store serves: with 1M keys it took about 2 s, which Open no longer
// waits for. Until it is done, LastUsed also asks the database. A time
// the writer published meanwhile is newer and is kept.
func (w *logWriter) loadLastUsed() {
	defer w.s.wg.Done()
	defer w.usedLoaded.Store(true)
	const batch = 4096
	ids := make([]string, 0, batch)
	times := make([]int64, 0, batch)
	publish := func() {
		w.usedMu.Lock()
		for i, id := range ids {
			if u, ok := w.lastUsed[id]; !ok {
				w.lastUsed[id] = &usedTimes{key: id, last: times[i], saved: times[i]}
			} else if times[i] > u.last {
				u.last, u.saved = times[i], times[i]
			}
		}
		w.usedMu.Unlock()
		ids, times = ids[:0], times[:0]
	}
	err := w.s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefixUsed
		opts.PrefetchValues = false // inline values: see LoadAll
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				if len(v) == 8 {
					ids = append(ids, string(item.Key()[len(prefixUsed):]))
					times = append(times, int64(binary.BigEndian.Uint64(v)))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(ids) == batch {
				publish()
				select {
				case <-w.s.stop:
					return nil
				default:
				}
			}
		}
		return nil
	})
	publish()
	if err != nil {
		w.s.log.Warn("store: loading the last-used times", "err", err)
	}
}

// storedLastUsed reads keyID's stored last-used time (0 if none).
func (w *logWriter) storedLastUsed(keyID string) int64 {
	var t int64
	w.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyOf(prefixUsed, keyID))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) == 8 {
				t = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	return t
}

// AppendLog buffers one usage-log record. It never blocks on I/O and
// does not allocate; when the buffer is full (or the store is closed) the
// record is dropped and counted in usagelog.Stats.Dropped. It copies e's
// borrowed bytes and does not retain e. Safe for concurrent use.
func (s *Store) AppendLog(e *usagelog.Entry) { s.logs.ring.Append(e, e.Time.UnixNano()) }

// FlushLogs writes every buffered record to disk now. It returns an error
// if a segment it wrote could not be written (its records are counted in
// usagelog.Stats.WriteErrors) or store.ErrClosed.
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

// usagelog.Stats returns the usage-log counters. Safe for concurrent use.
func (s *Store) LogStats() usagelog.Stats {
	st := s.logs.ring.Stats()
	st.Segments = int(s.logs.segments.Load())
	return st
}

// LastUsed returns the time of the newest written usage-log record of
// keyID, or the zero time if there is none. Records still in the buffer
// do not count yet. It survives restarts.
func (s *Store) LastUsed(keyID string) time.Time {
	w := &s.logs
	w.usedMu.RLock()
	var t int64
	u, ok := w.lastUsed[keyID]
	if ok {
		t = u.last
	}
	w.usedMu.RUnlock()
	if !w.usedLoaded.Load() && !s.closed.Load() {
		if st := w.storedLastUsed(keyID); st > t {
			t, ok = st, true
		}
	}
	if !ok {
		return time.Time{}
	}
	return timeOf(t)
}

func timeOf(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func (w *logWriter) err() error { return w.finalErr }

// run drains the buffer into segments until Close. A segment is written
// when it is full, or FlushInterval after its first record was taken from
// the buffer; the buffer is looked at every tick (a quarter of
// FlushInterval) and whenever it holds notifyAt records.
func (w *logWriter) run() {
	defer w.s.wg.Done()
	interval := w.s.opts.FlushInterval
	tick := time.NewTicker(max(interval/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-w.s.stop:
			// AppendLog refuses records once closed is set, so this
			// drain is the last.
			w.finalErr = w.flush()
			return
		case ch := <-w.flushReq:
			ch <- w.flush()
		case <-w.ring.Notify():
			w.drain()
		case <-tick.C:
			w.drain()
			if w.cur.n > 0 && time.Since(w.curStart) >= interval {
				w.seal()
			}
		}
	}
}

// flush drains the buffer and writes the current segment; it returns the
// first error of those writes. Errors of earlier background writes are
// not repeated: they were logged and counted when they happened, and a
// later flush that succeeds (say, once disk space returned) is a success.
func (w *logWriter) flush() error {
	w.lastErr = nil
	w.drain()
	if w.cur.n > 0 {
		w.seal()
	}
	w.saveLastUsed(true)
	err := w.lastErr
	w.lastErr = nil
	return err
}

// drain moves buffered records into the current segment, a few at a time
// so that AppendLog never waits long for the mutex, sealing full segments.
func (w *logWriter) drain() {
	// Every wake-up's work starts here (flush drains first too): the
	// writer's first slice begins now (see yield).
	w.sliceStart = time.Now()
	const chunk = 128
	segMax := w.s.opts.SegmentRecords
	// At most one buffer's worth per call, so that a saturating producer
	// cannot keep the writer from Close and FlushLogs.
	sinceYield := 0
	for budget := w.ring.Cap(); budget > 0; {
		if sinceYield >= yieldRecords {
			sinceYield = 0
			w.yield()
		}
		if w.cur.n == 0 {
			w.curStart = time.Now()
		}
		k, left := w.ring.Take(min(chunk, segMax-w.cur.n, budget), w.cur.add)
		budget -= k
		sinceYield += k
		if w.cur.n >= segMax {
			w.seal()
		}
		if left == 0 {
			return
		}
	}
	// Budget spent with records left: come back after serving the other
	// cases, as AppendLog will not wake us (it does so only when the
	// buffer fills up to notifyAt).
	w.ring.Wake()
}

// seal writes the current segment, its index and the last-used times of
// its keys in one transaction, and starts a new segment.
func (w *logWriter) seal() {
	id := max(w.nextSeg, w.s.bucketOf(time.Now())<<bucketShift)
	w.nextSeg = id + 1
	w.write(&w.cur, id)
	w.cur.reset()
}

// write stores g as segment id with its index in one transaction, then
// the last-used times of its keys that are due (see saveLastUsed). Write
// errors are logged and counted.
func (w *logWriter) write(g *segment, id uint64) {
	val, idx := w.encode(g)
	w.yield()
	newer := w.newerLastUsed(g)
	w.yield()
	err := w.update(func(txn *badger.Txn) error {
		if err := txn.Set(seqKey(prefixSegment, id), val); err != nil {
			return err
		}
		return txn.Set(seqKey(prefixIndex, id), idx)
	})
	if err != nil {
		w.failed(g.n, err)
		return
	}
	w.ring.Settle(g.n, 0, 0)
	w.segments.Add(1)
	// LastUsed must show a key's records as soon as a query can: no
	// yield before publishLastUsed (cheap map work); saveLastUsed
	// yields before each of its transactions.
	w.publishLastUsed(g, newer)
	w.saveLastUsed(false)
}

// saveLastUsed stores the last-used times in w.toSave, or with all every
// one not stored yet (FlushLogs, Close), in transactions of usedBatch
// keys. A key's time is due when it was never stored or is a full
// FlushInterval newer than the one stored (publishLastUsed): a busy
// key's time is then stored about once per FlushInterval instead of with
// every segment it is in (1,000 keys in every segment, of 4,096 records
// then: one Badger write per key per segment was the usage log's largest
// cost per check after zstd). LastUsed in the running process is exact
// all along; what a crash can leave on disk is a time up to
// FlushInterval older than the key's newest written record, as a crash
// loses up to FlushInterval of buffered records too.
func (w *logWriter) saveLastUsed(all bool) {
	if all {
		w.toSave = w.toSave[:0]
		for k, t := range w.unsaved {
			w.toSave = append(w.toSave, usedTime{k, t})
		}
	}
	for rest := w.toSave; len(rest) > 0; {
		w.yield()
		batch := rest[:min(len(rest), usedBatch)]
		rest = rest[len(batch):]
		err := w.update(func(txn *badger.Txn) error {
			for _, u := range batch {
				if err := txn.Set(keyOf(prefixUsed, u.key), binary.BigEndian.AppendUint64(nil, uint64(u.t))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			// The records are written; only the stored times lag, and
			// the next FlushLogs or Close tries again.
			for _, u := range rest {
				w.unsaved[u.key] = max(w.unsaved[u.key], u.t)
			}
			for _, u := range batch {
				w.unsaved[u.key] = max(w.unsaved[u.key], u.t)
			}
			w.s.log.Warn("store: writing last-used times", "keys", len(batch)+len(rest), "err", err)
			if w.lastErr == nil {
				w.lastErr = fmt.Errorf("store: write last-used times: %w", err)
			}
			return
		}
		w.usedMu.Lock()
		for _, u := range batch {
			e := w.lastUsed[u.key]
			e.saved = max(e.saved, u.t)
			if w.unsaved[u.key] <= u.t {
				delete(w.unsaved, u.key)
			}
		}
		w.usedMu.Unlock()
	}
}

// update runs fn in a Badger transaction, once the free space allows,
// excluding the retention's prefix drops.
func (w *logWriter) update(fn func(txn *badger.Txn) error) error {
	if err := w.s.checkSpace(); err != nil {
		return err
	}
	w.s.dropMu.Lock()
	defer w.s.dropMu.Unlock()
	return w.s.db.Update(fn)
}

// notifyRecords is how many buffered records wake the writer (fewer when
// the buffer or a segment is smaller). Few, so that it takes records
// while their slots are still in the CPU's cache: at 4,096 the ~2.6 MB of
// slots written in between had left it, and reading them back cost
// ~0.1 µs per record, more than a wake-up per 256 records does.
const notifyRecords = 256

// The writer's work between two yields: records moved into the segment
// (~0.1 ms), keys per last-used transaction (one Badger commit, ~0.2
// ms), and the compressor's block (segmentBlock, ~0.1 ms). A check that
// arrives during a slice waits for it. Halving the records (512 before)
// and quartering the keys (256) cut the longest holds to 0.6x for ~6 %
// more of the writer's CPU (see "The tail, third pass" in BENCHMARKS.md).
const (
	yieldRecords = 256
	usedBatch    = 64
	// A yield sleeps as long as the slice before it took, between
	// these bounds.
	yieldPauseMin = 20 * time.Microsecond
	yieldPauseMax = 2 * time.Millisecond
)

// yield lets the check path run between slices of the writer's work on a
// process with one P (GOMAXPROCS=1): nothing else runs while the writer
// computes there, and a segment's work in one piece (records into
// columns, zstd, the Badger write) held that P for milliseconds, every
// check waiting behind it.
//
// runtime.Gosched would not do: the scheduler takes the writer back from
// the global run queue before it polls the network, so the waiting
// connections would stay unread. A sleep parks the writer, so the
// scheduler polls the network and runs the checks that arrived first —
// but only until the sleep ends: the woken writer goes to the front of
// the run queue, ahead of checks already taken off the network. A fixed
// 20 µs sleep therefore gave the checks 20 µs (two to four of them, in a
// runtime trace at 30,000/s) for every slice of the writer's, and the
// ones queued behind waited out most of a segment's work. So the sleep
// is as long as the slice before it: while checks wait, the writer gets
// at most about half the P, more than it needs (an eighth to a quarter at
// saturation), and a check waits about one slice, not a segment.
//
// With more Ps the other Ps serve checks meanwhile, and yield does
// nothing.
func (w *logWriter) yield() {
	if runtime.GOMAXPROCS(0) != 1 {
		return
	}
	time.Sleep(min(max(time.Since(w.sliceStart), yieldPauseMin), yieldPauseMax))
	w.sliceStart = time.Now()
}

// encode returns g's compressed body and its index, in the writer's
// buffers: Badger keeps no reference to a value once the transaction
// that set it has returned.
func (w *logWriter) encode(g *segment) (val, idx []byte) {
	w.body = g.encodeBody(w.body[:0], w.yield)
	w.yield()
	w.val = compress(w.val[:0], w.body, w.yield)
	w.yield()
	w.idx = g.encodeIndex(w.idx[:0])
	return w.val, w.idx
}

// newerLastUsed sets w.keyMax to the newest time of each of g's keys and
// returns the keys (as dictionary indexes) whose newest time is later
// than the last-used time known so far.
func (w *logWriter) newerLastUsed(g *segment) []int {
	keys := g.dicts[dictKey].vals
	w.keyMax = grow(w.keyMax, len(keys))
	for i := range w.keyMax {
		w.keyMax[i] = 0
	}
	for i, si := range g.srcIdx {
		k := g.srcs[si].key
		if t := g.times[i]; w.keyMax[k] == 0 || t > w.keyMax[k] {
			w.keyMax[k] = t
		}
	}
	w.usedMu.RLock()
	defer w.usedMu.RUnlock()
	var newer []int
	for i, k := range keys {
		if len(k) == 0 {
			continue
		}
		if u, ok := w.lastUsed[string(k)]; !ok || w.keyMax[i] > u.last {
			newer = append(newer, i)
		}
	}
	return newer
}

// failed counts n records as write errors, logs err and keeps it for the
// flush in progress.
func (w *logWriter) failed(n int, err error) {
	w.ring.Settle(0, n, 0)
	err = fmt.Errorf("store: write log segment: %w", err)
	w.s.log.Error("store: usage-log records lost", "records", n, "err", err)
	if w.lastErr == nil {
		w.lastErr = err
	}
}

// publishLastUsed makes the newer last-used times of g's keys, now
// written, visible to LastUsed, and sets w.toSave to those due to be
// stored now, adding the others to w.unsaved (see saveLastUsed).
func (w *logWriter) publishLastUsed(g *segment, newer []int) {
	w.toSave = w.toSave[:0]
	if len(newer) == 0 {
		return
	}
	every := int64(w.s.opts.FlushInterval)
	keys := g.dicts[dictKey].vals
	w.usedMu.Lock()
	defer w.usedMu.Unlock()
	for _, i := range newer {
		t := w.keyMax[i]
		u := w.lastUsed[string(keys[i])]
		if u == nil {
			u = &usedTimes{key: string(keys[i])}
			w.lastUsed[u.key] = u
		}
		u.last = t
		if u.saved == 0 || t-u.saved >= every {
			w.toSave = append(w.toSave, usedTime{u.key, t})
		} else {
			w.unsaved[u.key] = t
		}
	}
}
