// Package engine is keygate's matching core: it parses and validates
// allowlist entries, compiles each key's allowlist into an immutable
// path-compressed radix trie, holds all keys in immutable snapshots that are
// swapped atomically, and makes the allocation-free decision for one check.
//
// The decision follows the product contract, in order: an unknown,
// malformed, revoked or expired key is DenyInvalidKey; a valid key without
// the required scope is DenyScope; a key with a non-empty allowlist that no
// entry of matches the client IP is DenyIP; everything else is Allow.
//
// engine imports only the standard library.
package engine

import (
	"net/netip"
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
)

var decisionNames = [...]string{"allow", "invalid_key", "insufficient_scope", "ip_not_allowed"}

// String returns a lower-case name for metrics and logs ("allow",
// "invalid_key", "insufficient_scope", "ip_not_allowed").
func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "unknown"
}

var decisionCodes = [...]string{"", "INVALID_KEY", "INSUFFICIENT_SCOPE", "IP_NOT_ALLOWED"}

// Code returns the error code of a denial as the API reports it
// ("INVALID_KEY", "INSUFFICIENT_SCOPE", "IP_NOT_ALLOWED"), or "" for Allow.
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
}

// Message returns the human-readable error message of a denial, or "" for
// Allow. The IP_NOT_ALLOWED message is fixed by the product contract.
func (d Decision) Message() string {
	if int(d) < len(decisionMessages) {
		return decisionMessages[d]
	}
	return "internal error"
}

// Result is a decision and what it was made about. The pointers refer to
// immutable data of the snapshot that made the decision and stay valid for
// as long as the caller holds them.
type Result struct {
	Decision Decision
	// Key is the key the secret belongs to; nil when the key is unknown.
	Key *Key
	// Entry is the most specific allowlist entry that matched; nil when the
	// allowlist is empty or nothing matched.
	Entry *Entry
}

// Matcher is an allowlist compiled for matching: one path-compressed radix
// trie per address family. It is immutable and safe for concurrent use.
type Matcher struct {
	v4, v6 trie
}

// NewMatcher compiles entries. The entries need not be canonical: each
// prefix is masked, and an IPv4-mapped prefix is treated as the IPv4 prefix
// it carries. Invalid prefixes never match. Match reports indexes into
// entries.
func NewMatcher(entries []Entry) *Matcher {
	m := &Matcher{}
	m.v4, m.v6 = buildTries(entries)
	return m
}

// Match returns the index of the most specific entry containing addr, or -1.
// A zoned address never matches; an IPv4-mapped IPv6 address matches as the
// IPv4 address it carries. Match does not allocate.
func (m *Matcher) Match(addr netip.Addr) int {
	if !addr.IsValid() || addr.Zone() != "" {
		return -1
	}
	addr = addr.Unmap()
	hi, lo := split128(addr)
	if addr.Is4() {
		return m.v4.lookup(hi, lo)
	}
	return m.v6.lookup(hi, lo)
}

// Contains reports whether any entry contains addr; see Match.
func (m *Matcher) Contains(addr netip.Addr) bool { return m.Match(addr) >= 0 }

// compiled is a key with its allowlist compiled for matching.
type compiled struct {
	key *Key
	m   Matcher
}

func compile(k *Key) *compiled {
	c := &compiled{key: k}
	c.m.v4, c.m.v6 = buildTries(k.Allowlist)
	return c
}

// Snapshot is an immutable view of every key. It is safe for concurrent use;
// nothing in it ever changes after it is published.
//
// Keys are found by the SHA-256 of their secret, spread over a two-level
// table indexed by the hash's first two bytes; publishing a change copies
// only the path to the one leaf it touches (about 4 KiB), whatever the
// number of keys.
type Snapshot struct {
	root *[256]*level
	n    int
	seq  uint64
}

// level is the second level of the table. gen is the build that made it:
// a builder changes in place only what its own build made.
type level struct {
	leaves [256]*leaf
	gen    uint64
}

// leaf holds the keys whose hashes share their first two bytes. tags holds
// bytes 2..9 of each hash so a scan touches one small array.
type leaf struct {
	tags []uint64
	keys []*compiled
	gen  uint64
}

func tagOf(h *Hash) uint64 {
	return uint64(h[2])<<56 | uint64(h[3])<<48 | uint64(h[4])<<40 | uint64(h[5])<<32 |
		uint64(h[6])<<24 | uint64(h[7])<<16 | uint64(h[8])<<8 | uint64(h[9])
}

var emptyRoot [256]*level

// Len returns the number of keys, revoked and expired ones included.
func (s *Snapshot) Len() int { return s.n }

// Seq returns the change sequence number the snapshot reflects, as set by
// the writer that published it.
func (s *Snapshot) Seq() uint64 { return s.seq }

func (s *Snapshot) find(h *Hash) *compiled {
	l := s.root[h[0]]
	if l == nil {
		return nil
	}
	lf := l.leaves[h[1]]
	if lf == nil {
		return nil
	}
	tag := tagOf(h)
	for i, t := range lf.tags {
		if t == tag && lf.keys[i].key.Hash == *h {
			return lf.keys[i]
		}
	}
	return nil
}

// Lookup returns the key stored under hash h, or nil.
func (s *Snapshot) Lookup(h Hash) *Key {
	if c := s.find(&h); c != nil {
		return c.key
	}
	return nil
}

// Range calls fn for every key, in no particular order, until fn returns
// false.
func (s *Snapshot) Range(fn func(*Key) bool) {
	for _, l := range s.root {
		if l == nil {
			continue
		}
		for _, lf := range l.leaves {
			if lf == nil {
				continue
			}
			for _, c := range lf.keys {
				if !fn(c.key) {
					return
				}
			}
		}
	}
}

// Check decides whether secret may be used from addr for a request that
// requires scope (empty: none). now decides expiry. Malformed input of any
// kind is a denial, never an error. Check does not allocate and does not
// retain its arguments.
func (s *Snapshot) Check(secret, scope []byte, addr netip.Addr, now time.Time) Result {
	if !ValidSecretFormat(secret) {
		return Result{Decision: DenyInvalidKey}
	}
	h := HashSecret(secret)
	c := s.find(&h)
	if c == nil {
		return Result{Decision: DenyInvalidKey}
	}
	k := c.key
	if !k.Active(now) {
		return Result{Decision: DenyInvalidKey, Key: k}
	}
	if !k.HasScope(scope) {
		return Result{Decision: DenyScope, Key: k}
	}
	if len(k.Allowlist) == 0 {
		return Result{Decision: Allow, Key: k}
	}
	if i := c.m.Match(addr); i >= 0 {
		return Result{Decision: Allow, Key: k, Entry: &k.Allowlist[i]}
	}
	return Result{Decision: DenyIP, Key: k}
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
// changed afterwards.
func (e *Engine) Load(keys []*Key, seq uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := newBuilder(&Snapshot{root: &emptyRoot})
	for _, k := range keys {
		b.put(k)
	}
	e.snap.Store(b.finish(seq))
}

// Put adds k, or replaces the key with the same hash, and publishes the
// result: the next check sees it. k must not be changed afterwards.
func (e *Engine) Put(k *Key) { e.Apply(0, []*Key{k}, nil) }

// Remove deletes the key with hash h, if present, and publishes the result.
func (e *Engine) Remove(h Hash) { e.Apply(0, nil, []Hash{h}) }

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

// builder makes a new snapshot from an old one by copy-on-write: each level
// and leaf it changes is copied once per build (stamped with the build's
// generation), then changed in place.
type builder struct {
	root *[256]*level
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

// leafFor returns a writable leaf for h, copying as needed.
func (b *builder) leafFor(h *Hash) *leaf {
	l := b.root[h[0]]
	if l == nil || l.gen != b.gen {
		nl := new(level)
		if l != nil {
			*nl = *l
		}
		nl.gen = b.gen
		b.root[h[0]] = nl
		l = nl
	}
	lf := l.leaves[h[1]]
	if lf == nil || lf.gen != b.gen {
		nlf := &leaf{gen: b.gen}
		if lf != nil {
			nlf.tags = append(make([]uint64, 0, len(lf.tags)+1), lf.tags...)
			nlf.keys = append(make([]*compiled, 0, len(lf.keys)+1), lf.keys...)
		}
		l.leaves[h[1]] = nlf
		lf = nlf
	}
	return lf
}

func (b *builder) put(k *Key) {
	c := compile(k)
	h := &k.Hash
	lf := b.leafFor(h)
	tag := tagOf(h)
	for i, t := range lf.tags {
		if t == tag && lf.keys[i].key.Hash == *h {
			lf.keys[i] = c
			return
		}
	}
	lf.tags = append(lf.tags, tag)
	lf.keys = append(lf.keys, c)
	b.n++
}

func (b *builder) remove(h *Hash) {
	if l := b.root[h[0]]; l == nil || l.leaves[h[1]] == nil {
		return
	}
	lf := b.leafFor(h)
	tag := tagOf(h)
	for i, t := range lf.tags {
		if t == tag && lf.keys[i].key.Hash == *h {
			last := len(lf.tags) - 1
			lf.tags[i], lf.keys[i] = lf.tags[last], lf.keys[last]
			lf.keys[last] = nil
			lf.tags, lf.keys = lf.tags[:last], lf.keys[:last]
			b.n--
			return
		}
	}
}
