package usagelog

import (
	"net/netip"
	"sync"
)

// Slot is one buffered record, with fixed-size room for the borrowed
// bytes of an Entry so that buffering never allocates.
type Slot struct {
	Time      int64
	LatencyUS uint64
	KeyID     string
	EntryID   string
	Code      string
	Hint      string
	IP        netip.Addr
	Status    uint16
	MethodLen uint8
	PathLen   uint16
	MethodBuf [MaxMethod]byte
	PathBuf   [MaxPath]byte
}

// Method is the slot's method, borrowed.
func (s *Slot) Method() []byte { return s.MethodBuf[:s.MethodLen] }

// Path is the slot's path, borrowed.
func (s *Slot) Path() []byte { return s.PathBuf[:s.PathLen] }

// Fill copies e into s, with timeNS as its time (the backend decides how
// a time is stored: clamped or not).
func (s *Slot) Fill(e *Entry, timeNS int64) {
	s.Time = timeNS
	s.LatencyUS = uint64(max(e.Latency.Microseconds(), 0))
	s.KeyID = e.KeyID
	s.EntryID = e.EntryID
	s.Code = e.Code
	s.Hint = e.Hint
	s.IP = e.IP
	s.Status = uint16(min(max(e.Status, 0), 0xffff))
	s.MethodLen = uint8(copy(s.MethodBuf[:], e.Method))
	s.PathLen = uint16(copy(s.PathBuf[:], e.Path))
}

// Ring is a backend's usage-log buffer: a ring of preallocated slots under
// a mutex held only to copy one record in or a few records out, and the
// counters of Stats, kept under the same mutex so that they always add
// up: queued + pending (taken, not yet settled) + written + write errors
// + dropped = appended. A backend's writer goroutine waits on Notify and
// takes records with Take; Append, on the check path, never blocks on I/O
// and does not allocate. It is safe for concurrent use.
type Ring struct {
	mu       sync.Mutex
	slots    []Slot
	head, n  int
	notifyAt int
	closed   bool
	pending  int

	dropped, written, writeErrors uint64

	notify chan struct{}
}

// Init makes room for size records; Append wakes the writer when notifyAt
// records are queued (at least 1).
func (r *Ring) Init(size, notifyAt int) {
	r.slots = make([]Slot, size)
	r.notifyAt = max(1, notifyAt)
	r.notify = make(chan struct{}, 1)
}

// Cap is the number of records the ring holds.
func (r *Ring) Cap() int { return len(r.slots) }

// Append queues e with time timeNS, copying its borrowed bytes; when the
// ring is full or closed the record is dropped and counted.
func (r *Ring) Append(e *Entry, timeNS int64) {
	r.mu.Lock()
	if r.n == len(r.slots) || r.closed {
		r.dropped++
		r.mu.Unlock()
		return
	}
	i := r.head + r.n
	if i >= len(r.slots) {
		i -= len(r.slots)
	}
	r.slots[i].Fill(e, timeNS)
	r.n++
	wake := r.n == r.notifyAt
	r.mu.Unlock()
	if wake {
		r.Wake()
	}
}

// Close makes every later Append drop its record: once Close returns, a
// writer that takes everything queued has seen the last record.
func (r *Ring) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// Notify is the channel a writer waits on: Append sends on it (without
// blocking) when notifyAt records are queued, and so does Wake.
func (r *Ring) Notify() <-chan struct{} { return r.notify }

// Wake sends on Notify unless a wake-up is already pending.
func (r *Ring) Wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Take hands up to max of the oldest queued records to fn, which must not
// retain the slot nor call the ring, moves them from queued to pending,
// and returns how many it took and how many stay queued. The slot's
// strings are cleared after fn, so that the ring keeps nothing alive.
func (r *Ring) Take(max int, fn func(*Slot)) (taken, left int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := min(r.n, max)
	for range k {
		sl := &r.slots[r.head]
		fn(sl)
		sl.KeyID, sl.EntryID, sl.Code, sl.Hint = "", "", "", ""
		r.head++
		if r.head == len(r.slots) {
			r.head = 0
		}
	}
	r.n -= k
	r.pending += k
	return k, r.n
}

// AddPending counts n records taken before (a backend's spool left by an
// earlier run) as pending.
func (r *Ring) AddPending(n int) {
	r.mu.Lock()
	r.pending += n
	r.mu.Unlock()
}

// Settle moves pending records to the written, write-error and dropped
// counts.
func (r *Ring) Settle(written, failed, dropped int) {
	r.mu.Lock()
	r.pending -= written + failed + dropped
	r.written += uint64(written)
	r.writeErrors += uint64(failed)
	r.dropped += uint64(dropped)
	r.mu.Unlock()
}

// Stats returns the counters, read together (Segments is the backend's).
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{
		Queued:      r.n,
		InSegment:   r.pending,
		Dropped:     r.dropped,
		Written:     r.written,
		WriteErrors: r.writeErrors,
	}
}
