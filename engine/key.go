package engine

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"time"
)

// Key is one API key, the domain type the stores and the management API
// share. The engine compiles what a check needs of it into a KeyInfo and
// keeps nothing else; a Key handed to the engine must not be changed
// afterwards: change a copy, then Apply it.
type Key struct {
	// ID is the public identifier ("key_..."); it is not a secret.
	ID          string
	Name        string
	Description string
	// Scopes the key grants; a check that requires a scope not listed here
	// is refused with DenyScope.
	Scopes []string
	// Hash is the SHA-256 of the secret; the secret itself is never kept.
	Hash Hash
	// Hint is the start of the secret ("kg_AbCdEfGh"), for people to tell
	// keys apart. It carries too few bits to help guess the rest.
	Hint      string
	CreatedAt time.Time
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time
	// RevokedAt is when the key was revoked; zero means it is active.
	RevokedAt time.Time
	// ReportOnly makes the allowlist advisory: a client IP that matches no
	// entry is allowed with the decision AllowReported instead of DenyIP.
	// Invalid keys and missing scopes are refused as always.
	ReportOnly bool
	// Allowlist restricts the client IPs the key may be used from; empty
	// allows every IP.
	Allowlist []Entry
	// PrevHash, PrevHint and PrevExpiresAt are the secret a rotation
	// replaced: it stays valid, with this key's id, scopes and allowlist,
	// until PrevExpiresAt, and is an invalid key from that instant. A zero
	// PrevHash means there is none. (Last: a check reads them only when
	// the previous secret is presented.)
	PrevHash      Hash
	PrevHint      string
	PrevExpiresAt time.Time
}

// Active reports whether the key may be used at time now: not revoked and
// not expired.
func (k *Key) Active(now time.Time) bool {
	if !k.RevokedAt.IsZero() {
		return false
	}
	return k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt)
}

// HasScope reports whether the key grants scope. The empty scope is
// granted to every key.
func (k *Key) HasScope(scope []byte) bool {
	if len(scope) == 0 {
		return true
	}
	for _, s := range k.Scopes {
		if s == string(scope) {
			return true
		}
	}
	return false
}

// HasPrev reports whether the key holds a previous secret (valid or not).
func (k *Key) HasPrev() bool { return k.PrevHash != Hash{} }

// Hashes returns the hashes the key is found under: its secret's and, after
// a rotation, the previous secret's.
func (k *Key) Hashes() []Hash {
	if k.HasPrev() {
		return []Hash{k.Hash, k.PrevHash}
	}
	return []Hash{k.Hash}
}

// Rotate gives k a new secret at time now: the current one becomes the
// previous secret, valid until now+overlap (a previous secret already held
// is dropped). It returns the new secret, which is kept only as a hash.
func (k *Key) Rotate(now time.Time, overlap time.Duration) (secret string) {
	secret, hint := NewSecret()
	k.PrevHash, k.PrevHint, k.PrevExpiresAt = k.Hash, k.Hint, now.Add(overlap).UTC()
	k.Hash, k.Hint = HashSecret([]byte(secret)), hint
	return secret
}

// MaxRotationOverlap is the longest time a rotated-out secret may keep
// working.
const MaxRotationOverlap = 7 * 24 * time.Hour

// Clone returns a deep copy of k that can be changed freely.
func (k *Key) Clone() *Key {
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	c.Allowlist = slices.Clone(k.Allowlist)
	return &c
}

// Hash is the SHA-256 digest of an API key secret.
type Hash [sha256.Size]byte

// HashSecret returns the hash under which a secret's key is stored: its
// SHA-256.
func HashSecret(secret []byte) Hash {
	if len(secret) == SecretLen {
		return sum256Secret((*[SecretLen]byte)(secret))
	}
	return sha256.Sum256(secret)
}

// The secret format: "kg_" + 32 base62 characters of randomness (190 bits)
// + 6 base62 characters of CRC-32 over them, in the manner of GitHub's token
// format, so that secret scanners can recognise a leaked key and a typo is
// recognised without the key table (ValidSecretFormat). A check needs only
// the shape (secretShape): see Snapshot.Check.
const (
	SecretPrefix  = "kg_"
	secretRandLen = 32
	secretSumLen  = 6
	// SecretLen is the length of every valid secret.
	SecretLen = len(SecretPrefix) + secretRandLen + secretSumLen
	hintLen   = len(SecretPrefix) + 8
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewSecret returns a fresh random API key secret and its hint. It panics
// only if the system's random source fails, as crypto/rand does.
func NewSecret() (secret, hint string) {
	b := make([]byte, SecretLen)
	copy(b, SecretPrefix)
	randBase62(b[len(SecretPrefix) : len(SecretPrefix)+secretRandLen])
	putChecksum(b[len(SecretPrefix)+secretRandLen:], crc32.ChecksumIEEE(b[len(SecretPrefix):len(SecretPrefix)+secretRandLen]))
	return string(b), string(b[:hintLen])
}

// ValidSecretFormat reports whether b has the shape of a keygate secret with
// a correct checksum. It does not allocate.
func ValidSecretFormat(b []byte) bool {
	if !secretShape(b) {
		return false
	}
	var want [secretSumLen]byte
	putChecksum(want[:], crc32.ChecksumIEEE(b[len(SecretPrefix):len(SecretPrefix)+secretRandLen]))
	return string(want[:]) == string(b[len(SecretPrefix)+secretRandLen:])
}

// secretShape reports whether b is SecretLen bytes: SecretPrefix, then
// base62 characters only. It tests eight bytes at a time, in about half
// the time of a table lookup per byte.
func secretShape(b []byte) bool {
	if len(b) != SecretLen {
		return false
	}
	prefix := binary.LittleEndian.Uint32(b) & 0xffffff
	// Bytes 3..40 in five words, the last two overlapping.
	bad := notBase62(binary.LittleEndian.Uint64(b[3:])) | notBase62(binary.LittleEndian.Uint64(b[11:])) |
		notBase62(binary.LittleEndian.Uint64(b[19:])) | notBase62(binary.LittleEndian.Uint64(b[27:])) |
		notBase62(binary.LittleEndian.Uint64(b[33:]))
	return prefix == uint32(SecretPrefix[0])|uint32(SecretPrefix[1])<<8|uint32(SecretPrefix[2])<<16 && bad&0x8080808080808080 == 0
}

// notBase62 returns a word whose byte i has its top bit (0x80) set if and
// only if byte i of x is not a base62 character; the other bits mean
// nothing. Each range test adds a constant to the low seven bits of every
// byte so that the top bit says "at least the range's first character"
// and, with a second constant, "past its last"; no byte carries into the
// next. Upper case is folded to lower case by setting bit 5, which maps
// nothing else into 'a'..'z'.
func notBase62(x uint64) uint64 {
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	y := x &^ tops
	digit := (y + (0x80-'0')*ones) &^ (y + (0x7f-'9')*ones)
	l := y | 0x20*ones
	letter := (l + (0x80-'a')*ones) &^ (l + (0x7f-'z')*ones)
	return x | ^(digit | letter)
}

// putChecksum writes v in base62, most significant digit first, into dst.
func putChecksum(dst []byte, v uint32) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = base62[v%62]
		v /= 62
	}
}

// randBase62 fills dst with uniformly random base62 characters.
func randBase62(dst []byte) {
	var buf [64]byte
	n := 0
	for n < len(dst) {
		rand.Read(buf[:])
		for _, r := range buf {
			// 248 = 4*62: reject the tail to keep the distribution uniform.
			if r < 248 && n < len(dst) {
				dst[n] = base62[r%62]
				n++
			}
		}
	}
}

// NewKeyID returns a new random key identifier ("key_" + 16 base62).
func NewKeyID() string { return newID("key_", 16) }

// NewEntryID returns a new random allowlist entry identifier ("ent_" + 12
// base62).
func NewEntryID() string { return newID("ent_", 12) }

func newID(prefix string, n int) string {
	b := make([]byte, len(prefix)+n)
	copy(b, prefix)
	randBase62(b[len(prefix):])
	return string(b)
}
