// Package engine is keygate's matching core: it parses and validates
// allowlist entries, compiles each key's allowlist into an immutable
// path-compressed radix trie, holds all keys in immutable snapshots that are
// swapped atomically, and makes the allocation-free decision for one check.
//
// The decision follows the product contract, in order: an unknown,
// malformed, revoked or expired key is DenyInvalidKey; a valid key without
// the required scope is DenyScope; a key with a non-empty allowlist that no
// live entry of matches the client IP is DenyIP (AllowReported when the key
// is report-only); everything else is Allow. An entry is live while it is
// neither disabled nor past its expiry; a list whose entries are all
// expired or disabled blocks every address, as it is not empty.
//
// engine imports only the standard library.
package engine

import (
	"encoding/binary"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Decision is the outcome of one check.
type Decision uint8

// The decisions, in the order the checks are made.
const (
	Allow Decision = iota
	DenyInvalidKey
	DenyScope
	DenyIP
	// AllowReported: the client IP matches no entry of a report-only key;
	// the check is allowed and logged as IP_NOT_ALLOWED.
	AllowReported
)

var decisionNames = [...]string{"allow", "invalid_key", "insufficient_scope", "ip_not_allowed", "ip_not_allowed_reported"}

// Allowed reports whether the request may proceed (Allow, AllowReported).
func (d Decision) Allowed() bool { return d == Allow || d == AllowReported }

// String returns a lower-case name, as metrics label decisions ("allow",
// "invalid_key", "insufficient_scope", "ip_not_allowed",
// "ip_not_allowed_reported").
func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "unknown"
}

var decisionCodes = [...]string{"", "INVALID_KEY", "INSUFFICIENT_SCOPE", "IP_NOT_ALLOWED", "IP_NOT_ALLOWED"}

// Code returns the error code of a denial as the API reports it
// ("INVALID_KEY", "INSUFFICIENT_SCOPE", "IP_NOT_ALLOWED"), or "" for Allow.
// AllowReported has the code of the denial it stands for, IP_NOT_ALLOWED,
// which the usage log records.
func (d Decision) Code() string {
	if int(d) < len(decisionCodes) {
		return decisionCodes[d]
	}
	return "INTERNAL"
}

var decisionMessages = [...]string{
	"",
	"The API key is missing, malformed, unknown, revoked or expired",
	"The API key does not have the scope this request requires",
	"Request IP address is not in the API key's allowlist",
	"",
}

// Message returns the human-readable error message of a denial, or "" for
// Allow and AllowReported. The IP_NOT_ALLOWED message is fixed by the
// product contract.
func (d Decision) Message() string {
	if int(d) < len(decisionMessages) {
		return decisionMessages[d]
	}
	return "internal error"
}

// Result is a decision and what it was made about. Key refers to immutable
// data of the snapshot that made the decision and stays valid for as long
// as the caller holds it.
type Result struct {
	// Key is the key the secret belongs to; nil when the key is unknown.
	Key      *KeyInfo
	Decision Decision
	// Prev is set when the secret presented is the key's previous one
	// (Key.PrevHash), inside or after its overlap.
	Prev bool
	// entry is 1 + the index of the matched entry, 0 for none.
	entry uint16
}

// EntryIndex returns the index into the key's allowlist of the most
// specific live entry that matched, or -1 when the allowlist is empty or
// nothing matched.
func (r *Result) EntryIndex() int { return int(r.entry) - 1 }

// EntryID returns the id of the entry that matched, or "" when none did
// (see EntryIndex). It does not allocate.
func (r *Result) EntryID() string {
	if r.entry == 0 {
		return ""
	}
	return r.Key.EntryID(int(r.entry) - 1)
}

// SecretHint returns the hint of the secret presented: the key's, or its
// previous one's; "" when the key is unknown. It does not allocate.
func (r *Result) SecretHint() string {
	switch {
	case r.Key == nil:
		return ""
	case r.Prev:
		return r.Key.PrevHint()
	}
	return r.Key.Hint()
}

// Matcher is an allowlist compiled for matching: one path-compressed radix
// trie per address family for the entries live before any expiry, and,
// when entries expire, one more pair per instant at which the set of live entries
// changes (at most one per entry), so that the entries' expiry costs a
// check nothing but picking the pair for its time: a lookup stays one trie
// walk, and the longest live entry wins, a shorter one taking over when a
// longer one expires. It is immutable and safe for concurrent use.
type Matcher struct {
	tries
	// later is nil unless entries expire; behind a pointer, as few keys
	// have one, to keep a compiled key in a 256-byte size class.
	later *[]epoch // ascending from
}

// tries is the compiled form of one set of live entries.
type tries struct {
	v4 trie4
	v6 trie
}

// epoch is the set of entries live from a Unix nanosecond time on.
type epoch struct {
	from int64
	tries
}

// NewMatcher compiles entries. The entries need not be canonical: each
// prefix is masked, and an IPv4-mapped prefix is treated as the IPv4 prefix
// it carries. Invalid prefixes and disabled entries never match; an entry
// with an expiry matches until it (see MatchAt). Match reports indexes into
// entries.
func NewMatcher(entries []Entry) *Matcher {
	m := newMatcher(entries)
	return &m
}

func newMatcher(entries []Entry) (m Matcher) {
	m.v4, m.v6 = buildTries(entries, math.MinInt64)
	var ends []int64
	for i := range entries {
		if e := &entries[i]; !e.Disabled && !e.ExpiresAt.IsZero() {
			ends = append(ends, e.ExpiresAt.UnixNano())
		}
	}
	if len(ends) == 0 {
		return m
	}
	slices.Sort(ends)
	ends = slices.Compact(ends)
	later := make([]epoch, len(ends))
	for i, t := range ends {
		later[i].from = t
		later[i].v4, later[i].v6 = buildTries(entries, t)
	}
	m.later = &later
	return m
}

// at returns the tries of the entries live at now: those of the last epoch
// that began at or before it. An entry's expiry is an epoch's start, so
// from that instant on the entry is absent.
func (m *Matcher) at(now int64) *tries {
	t := &m.tries
	if m.later != nil {
		later := *m.later
		for i := range later {
			if now < later[i].from {
				break
			}
			t = &later[i].tries
		}
	}
	return t
}

// MatchAt returns the index of the most specific entry live at now that
// contains addr, or -1: a disabled entry never matches and an entry with an
// expiry matches nothing from that instant on. Otherwise as Match. MatchAt
// does not allocate.
func (m *Matcher) MatchAt(addr netip.Addr, now time.Time) int {
	return m.at(unixNano(now)).match(addr)
}

// Match returns the index of the most specific entry containing addr, or -1,
// ignoring expiry (every enabled entry counts; MatchAt honours it). A
// zoned address never matches; an IPv4-mapped IPv6 address matches as the
// IPv4 address it carries. Match does not allocate.
func (m *Matcher) Match(addr netip.Addr) int { return m.tries.match(addr) }

// Contains reports whether any entry contains addr; see Match.
func (m *Matcher) Contains(addr netip.Addr) bool { return m.Match(addr) >= 0 }

// compiled is a key as a snapshot holds it: what a check reads, with its
// allowlist compiled for matching, in one 256-byte object (the tries'
// arrays and the packed text aside).
type compiled struct {
	KeyInfo
	m Matcher
}

func compile(k *Key) *compiled {
	return &compiled{KeyInfo: newKeyInfo(k), m: newMatcher(k.Allowlist)}
}

// Snapshot is an immutable view of every key. It is safe for concurrent use;
// nothing in it ever changes after it is published.
//
// Keys are found by the SHA-256 of their secret, spread over 65,536
// buckets indexed by the hash's first two bytes, under a 64-way root and
// 32-way inner nodes; publishing a change copies only the root, one inner
// node, one leaf and one bucket (about 1.5 KiB and 128 pointers),
// whatever the number of keys. The inner nodes (17 KiB in all) stay in
// cache, so the extra level costs a check little.
type Snapshot struct {
	root *[rootFan]*inner
	n    int
	seq  uint64
}

// The table's fan-out at each level: rootFan * innerFan * leafFan buckets,
// one per value of the hash's first two bytes.
const (
	rootFan  = 64
	innerFan = 32
	leafFan  = 32
)

// inner is the second level of the table, leaf the third. gen is the
// build that made it: a builder changes in place only nodes its own build
// made. Buckets are never changed in place.
type inner struct {
	leaves [innerFan]*leaf
	gen    uint64
}

type leaf struct {
	buckets [leafFan][]slot
	gen     uint64
}

// path returns the indexes of h's bucket at each level of the table.
func path(h *Hash) (r, i, l uint) {
	v := uint(h[0])<<8 | uint(h[1])
	return v / (innerFan * leafFan), v / leafFan % innerFan, v % leafFan
}

// slot is one key of a bucket; tag holds bytes 2..9 of its hash so that a
// scan compares within one small array before following a pointer.
type slot struct {
	tag uint64
	c   *compiled
}

func tagOf(h *Hash) uint64 { return binary.BigEndian.Uint64(h[2:10]) }

var emptyRoot [rootFan]*inner

// Len returns the number of keys, revoked and expired ones included.
func (s *Snapshot) Len() int { return s.n }

// Seq returns the change sequence number the snapshot reflects, as set by
// the writer that published it.
func (s *Snapshot) Seq() uint64 { return s.seq }

// bucketOf returns the slots of the table root that may hold h.
func bucketOf(root *[rootFan]*inner, h *Hash) []slot {
	r, i, l := path(h)
	if in := root[r]; in != nil {
		if lf := in.leaves[i]; lf != nil {
			return lf.buckets[l]
		}
	}
	return nil
}

func indexOf(b []slot, h *Hash) int {
	i, _ := indexPrev(b, h)
	return i
}

// indexPrev returns the index of the slot holding h, or -1, and whether h
// is its key's previous secret's hash.
func indexPrev(b []slot, h *Hash) (int, bool) {
	tag := tagOf(h)
	for i := range b {
		if b[i].tag != tag {
			continue
		}
		k := &b[i].c.KeyInfo
		if k.hash == *h {
			return i, false
		}
		if k.prevHash == *h && k.HasPrev() {
			return i, true
		}
	}
	return -1, false
}

func (s *Snapshot) find(h *Hash) (*compiled, bool) {
	b := bucketOf(s.root, h)
	if i, prev := indexPrev(b, h); i >= 0 {
		return b[i].c, prev
	}
	return nil, false
}

// Check decides whether secret may be used from addr for a request that
// requires scope (empty: none). now decides expiry. Malformed input of any
// kind is a denial, never an error. Check does not allocate and does not
// retain its arguments.
func (s *Snapshot) Check(secret, scope []byte, addr netip.Addr, now time.Time) Result {
	// Only the shape is checked before the lookup, not the checksum: a
	// secret whose hash is in the table is one keygate issued, so its
	// checksum holds, and a secret that is not found gets the denial a
	// malformed one does. Garbage of the right shape costs a SHA-256 and
	// a miss instead of a CRC-32 (BENCHMARKS.md has both).
	if !secretShape(secret) {
		return Result{Decision: DenyInvalidKey}
	}
	h := sum256Secret((*[SecretLen]byte)(secret))
	c, prev := s.find(&h)
	if c == nil {
		return Result{Decision: DenyInvalidKey}
	}
	k := &c.KeyInfo
	ns := unixNano(now)
	// The previous secret after its overlap is as invalid as a revoked one.
	if !k.active(ns) || prev && ns >= k.prevExpires {
		return Result{Decision: DenyInvalidKey, Key: k, Prev: prev}
	}
	if !k.HasScope(scope) {
		return Result{Decision: DenyScope, Key: k, Prev: prev}
	}
	if k.flags&flagAllowlist == 0 {
		return Result{Decision: Allow, Key: k, Prev: prev}
	}
	m := &c.m.tries
	if c.m.later != nil {
		m = c.m.at(ns)
	}
	if i := m.match(addr); i >= 0 {
		return Result{Decision: Allow, Key: k, entry: uint16(i + 1), Prev: prev}
	}
	if k.ReportOnly() {
		return Result{Decision: AllowReported, Key: k, Prev: prev}
	}
	return Result{Decision: DenyIP, Key: k, Prev: prev}
}

// Engine holds the current Snapshot and publishes new ones. Check and
// Snapshot are safe for concurrent use and never block; writers (Load, Put,
// Remove, Apply) are serialised among themselves. The zero value is not
// usable: call New.
type Engine struct {
	mu   sync.Mutex
	snap atomic.Pointer[Snapshot]
}

// New returns an engine holding an empty snapshot.
func New() *Engine {
	e := &Engine{}
	e.snap.Store(&Snapshot{root: &emptyRoot})
	return e
}

// Snapshot returns the current snapshot.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Check decides against the current snapshot; see Snapshot.Check.
func (e *Engine) Check(secret, scope []byte, addr netip.Addr, now time.Time) Result {
	return e.snap.Load().Check(secret, scope, addr, now)
}

// Load replaces every key with keys and records seq. The keys must not be
// changed afterwards. It is a daemon's start: the keys are compiled in
// parallel (compileAll), and every bucket is allocated once at its final
// size and filled in place, where Apply writes a new copy of a bucket per
// key. The result is the snapshot putting the keys one by one, in order,
// would make (a later key with the same hash replaces an earlier one).
func (e *Engine) Load(keys []*Key, seq uint64) {
	cs := compileAll(keys)
	e.mu.Lock()
	defer e.mu.Unlock()
	b := newBuilder(&Snapshot{root: &emptyRoot})
	// Slots per bucket (an upper bound: a hash met twice takes one), then
	// one array carved into the buckets.
	counts := make([]int32, 1<<16)
	total := 0
	for _, c := range cs {
		for _, h := range c.hashes() {
			if h != nil {
				counts[int(h[0])<<8|int(h[1])]++
				total++
			}
		}
	}
	slots := make([]slot, total)
	for _, c := range cs {
		for _, h := range c.hashes() {
			if h == nil {
				continue
			}
			bp := b.bucketFor(h)
			if *bp == nil {
				n := int(counts[int(h[0])<<8|int(h[1])])
				*bp, slots = slots[:0:n], slots[n:]
			}
			// The bucket is this build's own: changed in place.
			*bp = b.setIn(*bp, c, h)
		}
	}
	e.snap.Store(b.finish(seq))
}

// hashes are the hashes c is filed under: its own and, after a rotation,
// its previous secret's (else nil).
func (c *compiled) hashes() [2]*Hash {
	if c.HasPrev() && c.prevHash != c.hash {
		return [2]*Hash{&c.hash, &c.prevHash}
	}
	return [2]*Hash{&c.hash}
}

// loadChunk is how many keys a compileAll worker takes at a time.
const loadChunk = 1024

// compileAll compiles keys in up to GOMAXPROCS goroutines, chunk by chunk.
func compileAll(keys []*Key) []*compiled {
	cs := make([]*compiled, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(keys)/loadChunk+1) {
		wg.Go(func() {
			for {
				lo := int(next.Add(loadChunk)) - loadChunk
				if lo >= len(keys) {
					return
				}
				for i := lo; i < min(lo+loadChunk, len(keys)); i++ {
					cs[i] = compile(keys[i])
				}
			}
		})
	}
	wg.Wait()
	return cs
}

// Apply puts and removes keys in one publication, so readers see all of the
// change or none of it. A non-zero seq is recorded as the snapshot's
// sequence number; zero keeps the current one. The keys must not be
// changed afterwards.
func (e *Engine) Apply(seq uint64, put []*Key, remove []Hash) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.snap.Load()
	b := newBuilder(cur)
	for i := range remove {
		b.remove(&remove[i])
	}
	for _, k := range put {
		b.put(k)
	}
	if seq == 0 {
		seq = cur.seq
	}
	e.snap.Store(b.finish(seq))
}

// builder makes a new snapshot from an old one by copy-on-write: the root is
// copied once, each inner node and leaf it changes is copied once per build
// (stamped with the build's generation) and then changed in place, and each
// bucket it changes is written as a new array.
type builder struct {
	root *[rootFan]*inner
	n    int
	gen  uint64
}

// generation numbers builds; writers are serialised, but a global counter
// keeps stamps unique across engines too.
var generation atomic.Uint64

func newBuilder(s *Snapshot) *builder {
	root := *s.root
	return &builder{root: &root, n: s.n, gen: generation.Add(1)}
}

func (b *builder) finish(seq uint64) *Snapshot {
	return &Snapshot{root: b.root, n: b.n, seq: seq}
}

// bucketFor returns a writable pointer to h's bucket, copying the inner
// node and leaf above it as needed.
func (b *builder) bucketFor(h *Hash) *[]slot {
	r, i, l := path(h)
	in := own(&b.root[r], b.gen, func(n *inner) *uint64 { return &n.gen })
	lf := own(&in.leaves[i], b.gen, func(n *leaf) *uint64 { return &n.gen })
	return &lf.buckets[l]
}

// own returns *p if build gen made it; otherwise it stores in *p, and
// returns, a copy of *p (or a new node when *p is nil) stamped gen.
func own[T any](p **T, gen uint64, genOf func(*T) *uint64) *T {
	old := *p
	if old != nil && *genOf(old) == gen {
		return old
	}
	n := new(T)
	if old != nil {
		*n = *old
	}
	*genOf(n) = gen
	*p = n
	return n
}

// put adds k under its hash and, after a rotation, its previous secret's,
// replacing what those hashes held.
func (b *builder) put(k *Key) {
	c := compile(k)
	for _, h := range c.hashes() {
		if h != nil {
			b.putUnder(c, h)
		}
	}
}

func (b *builder) putUnder(c *compiled, h *Hash) {
	bp := b.bucketFor(h)
	old := *bp
	// Buckets may be shared with published snapshots: always write a copy.
	nb := make([]slot, len(old), len(old)+1)
	copy(nb, old)
	*bp = b.setIn(nb, c, h)
}

// setIn files c under h in bucket bk, replacing what h held, and returns
// the bucket (appended to when h is new in it).
func (b *builder) setIn(bk []slot, c *compiled, h *Hash) []slot {
	if i := indexOf(bk, h); i >= 0 {
		b.n -= bk[i].c.primary(h)
		bk[i].c = c
	} else {
		bk = append(bk, slot{tag: tagOf(h), c: c})
	}
	b.n += c.primary(h)
	return bk
}

// primary is 1 when h is the key's own hash, 0 for its previous secret's:
// a snapshot counts keys, not the slots they take.
func (c *compiled) primary(h *Hash) int {
	if c.hash == *h {
		return 1
	}
	return 0
}

func (b *builder) remove(h *Hash) {
	i := indexOf(bucketOf(b.root, h), h)
	if i < 0 {
		return
	}
	bp := b.bucketFor(h)
	old := *bp
	nb := make([]slot, 0, len(old)-1)
	b.n -= old[i].c.primary(h)
	*bp = append(append(nb, old[:i]...), old[i+1:]...)
}
