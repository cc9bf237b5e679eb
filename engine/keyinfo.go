package engine

import (
	"iter"
	"math"
	"strings"
	"time"
)

// KeyInfo is what a Snapshot holds of a key: only what a check reads and
// what a check's answer and usage-log record name (id, name, hints,
// scopes, entry ids). The key's other fields (description, creation time,
// entry labels, prefixes) stay with the store, which the management API
// reads. A KeyInfo is immutable and safe for concurrent use; the zero
// value is not a key (Snapshot.Check returns a nil *KeyInfo for an unknown
// one).
//
// Times are held as Unix nanoseconds, so instants after the year 2262
// saturate: an expiry that late counts as never.
type KeyInfo struct {
	hash Hash
	// expires is when the key stops working; math.MaxInt64 for never.
	expires int64
	// text packs every string of the key into one allocation: the id, the
	// name, the hint, the previous hint, the scopes (each a uvarint length
	// and its bytes), then the entry ids (each entW bytes, or, when entW is
	// 0, a uvarint length and its bytes). ends holds where each of the
	// first five parts ends.
	text  string
	ends  [5]uint32
	entW  uint8
	flags uint8
	// prevHash and prevExpires are the rotated-out secret's: a zero
	// prevHash means there is none.
	prevHash    Hash
	prevExpires int64
}

const (
	flagRevoked uint8 = 1 << iota
	flagReportOnly
	flagAllowlist // the allowlist is not empty
)

const (
	endID = iota
	endName
	endHint
	endPrevHint
	endScopes
)

// newKeyInfo packs what a check needs of k.
func newKeyInfo(k *Key) KeyInfo {
	ki := KeyInfo{hash: k.Hash, prevHash: k.PrevHash, expires: math.MaxInt64, prevExpires: math.MinInt64}
	if !k.ExpiresAt.IsZero() {
		ki.expires = unixNano(k.ExpiresAt)
	}
	if !k.PrevExpiresAt.IsZero() {
		ki.prevExpires = unixNano(k.PrevExpiresAt)
	}
	if !k.RevokedAt.IsZero() {
		ki.flags |= flagRevoked
	}
	if k.ReportOnly {
		ki.flags |= flagReportOnly
	}
	if len(k.Allowlist) > 0 {
		ki.flags |= flagAllowlist
	}
	n := len(k.ID) + len(k.Name) + len(k.Hint) + len(k.PrevHint)
	for _, s := range k.Scopes {
		n += uvarintLen(len(s)) + len(s)
	}
	ki.entW = uniformIDWidth(k.Allowlist)
	for _, e := range k.Allowlist {
		if ki.entW == 0 {
			n += uvarintLen(len(e.ID))
		}
		n += len(e.ID)
	}
	var b strings.Builder
	b.Grow(n)
	for i, s := range [...]string{k.ID, k.Name, k.Hint, k.PrevHint} {
		b.WriteString(s)
		ki.ends[i] = uint32(b.Len())
	}
	for _, s := range k.Scopes {
		writeUvarint(&b, len(s))
		b.WriteString(s)
	}
	ki.ends[endScopes] = uint32(b.Len())
	for _, e := range k.Allowlist {
		if ki.entW == 0 {
			writeUvarint(&b, len(e.ID))
		}
		b.WriteString(e.ID)
	}
	ki.text = b.String()
	return ki
}

// uniformIDWidth returns the length all the entries' ids share, or 0 when
// they differ, are empty or longer than 255 bytes.
func uniformIDWidth(es []Entry) uint8 {
	if len(es) == 0 || len(es[0].ID) > math.MaxUint8 {
		return 0
	}
	w := len(es[0].ID)
	for _, e := range es[1:] {
		if len(e.ID) != w {
			return 0
		}
	}
	return uint8(w)
}

// unixNano is t.UnixNano, saturated where that is undefined (before 1678,
// after 2262).
func unixNano(t time.Time) int64 {
	const maxSec = math.MaxInt64/int64(time.Second) - 1
	switch s := t.Unix(); {
	case s > maxSec:
		return math.MaxInt64
	case s < -maxSec:
		return math.MinInt64
	}
	return t.UnixNano()
}

func uvarintLen(n int) int {
	w := 1
	for ; n >= 0x80; n >>= 7 {
		w++
	}
	return w
}

func writeUvarint(b *strings.Builder, n int) {
	for ; n >= 0x80; n >>= 7 {
		b.WriteByte(byte(n) | 0x80)
	}
	b.WriteByte(byte(n))
}

// next splits the first length-prefixed string off s.
func next(s string) (first, rest string) {
	n, w := int(s[0]), 1
	if n >= 0x80 {
		n, w = 0, 0
		for shift := 0; ; shift += 7 {
			c := s[w]
			w++
			n |= int(c&0x7f) << shift
			if c < 0x80 {
				break
			}
		}
	}
	return s[w : w+n], s[w+n:]
}

func (k *KeyInfo) part(i int) string {
	start := uint32(0)
	if i > 0 {
		start = k.ends[i-1]
	}
	return k.text[start:k.ends[i]]
}

// ID returns the key's public identifier.
func (k *KeyInfo) ID() string { return k.part(endID) }

// Name returns the key's name.
func (k *KeyInfo) Name() string { return k.part(endName) }

// Hint returns the start of the key's current secret.
func (k *KeyInfo) Hint() string { return k.part(endHint) }

// PrevHint returns the start of the rotated-out secret, or "" when the key
// holds none.
func (k *KeyInfo) PrevHint() string { return k.part(endPrevHint) }

// ReportOnly reports whether the key's allowlist is advisory.
func (k *KeyInfo) ReportOnly() bool { return k.flags&flagReportOnly != 0 }

// HasPrev reports whether the key holds a previous secret (valid or not).
func (k *KeyInfo) HasPrev() bool { return k.prevHash != Hash{} }

// active reports whether the key may be used at Unix nanosecond time now:
// not revoked and not expired.
func (k *KeyInfo) active(now int64) bool {
	return k.flags&flagRevoked == 0 && now < k.expires
}

// HasScope reports whether the key grants scope, as Key.HasScope does. It
// does not allocate.
func (k *KeyInfo) HasScope(scope []byte) bool {
	if len(scope) == 0 {
		return true
	}
	for s := k.text[k.ends[endPrevHint]:k.ends[endScopes]]; s != ""; {
		var sc string
		sc, s = next(s)
		if sc == string(scope) {
			return true
		}
	}
	return false
}

// Scopes yields the scopes the key grants, in order. It does not
// allocate.
func (k *KeyInfo) Scopes() iter.Seq[string] {
	return func(yield func(string) bool) {
		for s := k.text[k.ends[endPrevHint]:k.ends[endScopes]]; s != ""; {
			var sc string
			sc, s = next(s)
			if !yield(sc) {
				return
			}
		}
	}
}

// EntryID returns the id of the key's allowlist entry i (the index into
// Key.Allowlist of the Key it was compiled from). i must be in range.
func (k *KeyInfo) EntryID(i int) string {
	s := k.text[k.ends[endScopes]:]
	if w := int(k.entW); w > 0 {
		return s[i*w : i*w+w]
	}
	for ; i > 0; i-- {
		_, s = next(s)
	}
	id, _ := next(s)
	return id
}
