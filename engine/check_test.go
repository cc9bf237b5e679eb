package engine

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/internal/golden"
)

// refValidSecretFormat is the secret format checked the plain way, one byte
// at a time: the reference for secretShape and ValidSecretFormat.
func refValidSecretFormat(b []byte) (shape, checksum bool) {
	if len(b) != SecretLen || !strings.HasPrefix(string(b), SecretPrefix) {
		return false, false
	}
	for _, c := range b[len(SecretPrefix):] {
		if strings.IndexByte(base62, c) < 0 {
			return false, false
		}
	}
	var want [secretSumLen]byte
	putChecksum(want[:], crc32.ChecksumIEEE(b[len(SecretPrefix):len(SecretPrefix)+secretRandLen]))
	return true, string(want[:]) == string(b[len(SecretPrefix)+secretRandLen:])
}

// refCheck is the decision made the straightforward way: the whole format
// with its checksum, sha256.Sum256, a scan over every key, and the
// reference match over the entries live at now.
func refCheck(keys []*Key, secret, scope []byte, addr netip.Addr, now time.Time) (d Decision, key *Key, prev bool, entry netip.Prefix) {
	if _, ok := refValidSecretFormat(secret); !ok {
		return DenyInvalidKey, nil, false, entry
	}
	h := sha256.Sum256(secret)
	for _, k := range keys {
		if k.Hash == h {
			key = k
			break
		}
		if k.HasPrev() && k.PrevHash == h {
			key, prev = k, true
			break
		}
	}
	switch {
	case key == nil:
		return DenyInvalidKey, nil, false, entry
	case !key.RevokedAt.IsZero(), !key.ExpiresAt.IsZero() && !now.Before(key.ExpiresAt), prev && !now.Before(key.PrevExpiresAt):
		return DenyInvalidKey, key, prev, entry
	case len(scope) > 0 && !strings.Contains(" "+strings.Join(key.Scopes, " ")+" ", " "+string(scope)+" "):
		return DenyScope, key, prev, entry
	case len(key.Allowlist) == 0:
		return Allow, key, prev, entry
	}
	live := make([]bool, len(key.Allowlist))
	for i := range key.Allowlist {
		live[i] = key.Allowlist[i].Live(now)
	}
	if i := golden.MatchLive(prefixesOf(key.Allowlist), live, addr); i >= 0 {
		return Allow, key, prev, key.Allowlist[i].Prefix
	}
	if key.ReportOnly {
		return AllowReported, key, prev, entry
	}
	return DenyIP, key, prev, entry
}

// malformed returns variants of a valid secret that are not valid secrets:
// wrong length, characters outside base62 (in the prefix, the random part
// and the checksum), a wrong prefix, and typos that keep the shape but
// break the checksum.
func malformed(r *rand.Rand, secret string) []string {
	out := []string{
		"", "kg_", secret[:SecretLen-1], secret + "0", secret[:SecretLen-1] + "\x00", secret + secret,
		"KG_" + secret[3:], "kh_" + secret[3:], "xkg_" + secret[4:], strings.Repeat("0", SecretLen),
		SecretPrefix + strings.Repeat("0", SecretLen-len(SecretPrefix)),
	}
	for _, c := range []byte{'!', '-', '_', ' ', '/', ':', '@', '[', '`', '{', 0x00, 0x7f, 0x80, 0xc0, 0xff, '0' - 1, '9' + 1, 'A' - 1, 'Z' + 1, 'a' - 1, 'z' + 1} {
		b := []byte(secret)
		b[len(SecretPrefix)+r.IntN(SecretLen-len(SecretPrefix))] = c
		out = append(out, string(b))
	}
	for _, at := range []int{len(SecretPrefix), len(SecretPrefix) + secretRandLen - 1, len(SecretPrefix) + secretRandLen, SecretLen - 1, len(SecretPrefix) + r.IntN(SecretLen-len(SecretPrefix))} {
		b := []byte(secret)
		b[at] = base62[(strings.IndexByte(base62, b[at])+1+r.IntN(61))%62]
		out = append(out, string(b))
	}
	return out
}

// TestCheckAgainstReference compares Check with refCheck (decision, key,
// previous-secret flag, entry) over random keys (scopes, allowlists with
// expiring and disabled entries, report-only, revoked, expired, rotated
// with the previous secret inside and past its overlap) and every kind of
// secret: each key's, its previous one, unknown ones of the right format,
// and malformed ones, at instants on either side of the expiries.
//
// Check verifies the shape but not the checksum (see Snapshot.Check). The
// stored hashes here are those of secrets keygate issues, plus keys stored
// under the hash of a malformed-shape secret, which both refuse. The one
// case where the two differ cannot arise from keygate's own writes: a key
// stored under the hash of a well-shaped secret with a wrong checksum,
// which Check would accept and the reference would not.
func TestCheckAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 16))
	scopes := []string{"read", "write", "admin"}
	at := []time.Time{now.Add(-2 * time.Hour), now, now.Add(30 * time.Minute), now.Add(2 * time.Hour), now.Add(48 * time.Hour)}
	randTime := func() time.Time { return now.Add(time.Duration(r.IntN(5)-2) * time.Hour) }
	var keys []*Key
	var secrets, prevs []string
	for i := range 150 {
		k := &Key{ID: fmt.Sprintf("key_%016d", i), Name: "ref", CreatedAt: now}
		for _, s := range scopes {
			if r.IntN(2) == 0 {
				k.Scopes = append(k.Scopes, s)
			}
		}
		k.Allowlist = entriesOf(golden.PublicPrefixes(r, r.IntN(6), r.IntN(2) == 0))
		for j := range k.Allowlist {
			e := &k.Allowlist[j]
			e.ID = fmt.Sprintf("ent_%012d", j)
			switch r.IntN(5) {
			case 0:
				e.ExpiresAt = randTime()
			case 1:
				e.Disabled = true
			}
		}
		k.ReportOnly = r.IntN(4) == 0
		switch r.IntN(6) {
		case 0:
			k.RevokedAt = now.Add(-time.Hour)
		case 1:
			k.ExpiresAt = randTime()
		}
		secret, hint := NewSecret()
		k.Hash, k.Hint = HashSecret([]byte(secret)), hint
		prev := ""
		if r.IntN(3) == 0 {
			prev = secret
			secret = k.Rotate(randTime(), time.Hour)
		}
		keys, secrets, prevs = append(keys, k), append(secrets, secret), append(prevs, prev)
	}
	// Keys stored under the hash of a malformed-shape secret (as a forged
	// store could hold): refused like any malformed secret.
	for i, s := range []string{"kg_" + strings.Repeat("!", SecretLen-3), secrets[0][:SecretLen-1] + "-", "KG_" + secrets[1][3:]} {
		k := &Key{ID: fmt.Sprintf("key_forged%07d", i), Name: "forged", Hash: HashSecret([]byte(s)), CreatedAt: now}
		keys, secrets, prevs = append(keys, k), append(secrets, s), append(prevs, "")
	}
	e := New()
	e.Load(keys, 1)
	n := 0
	for i, k := range keys {
		// The key's secret, the malformed variants, then an unknown secret,
		// a random 41 bytes, and the previous secret or the secret again.
		cands := append([]string{secrets[i]}, malformed(r, secrets[i])...)
		unknown, _ := NewSecret()
		cands = append(cands, unknown, string(golden.RandAddr(r, false).AsSlice())+unknown[4:], cmp.Or(prevs[i], secrets[i]))
		addrs := []netip.Addr{golden.RandAddr(r, false), golden.RandAddr(r, true), {}, netip.MustParseAddr("2001:db8::1%eth0")}
		for _, en := range k.Allowlist {
			a := golden.LastAddr(en.Prefix)
			addrs = append(addrs, a, netip.AddrFrom16(a.As16()), a.Next())
		}
		for c, s := range cands {
			for _, scope := range []string{"", "read", "write", "admin", "other"} {
				for _, now := range at {
					for _, a := range addrs {
						if c > 0 && c <= len(cands)-4 && r.IntN(20) != 0 {
							continue // a malformed secret: a sample of the grid is enough
						}
						got := e.Check([]byte(s), []byte(scope), a, now)
						d, key, prev, entry := refCheck(keys, []byte(s), []byte(scope), a, now)
						var gotEntry netip.Prefix
						if i := got.EntryIndex(); i >= 0 && key != nil {
							gotEntry = key.Allowlist[i].Prefix
						}
						require.Equal(t, d, got.Decision, "%q scope %q %s at %s", s, scope, a, now)
						require.Equal(t, key == nil, got.Key == nil, "%q: key", s)
						if key != nil {
							require.Equal(t, key.ID, got.Key.ID(), "%q: key", s)
						}
						require.Equal(t, prev, got.Prev, "%q: prev", s)
						require.Equal(t, entry, gotEntry, "%q %s at %s: entry", s, a, now)
						n++
					}
				}
			}
		}
	}
	t.Logf("%d checks agree", n)
}

// TestSecretShapeAgainstReference compares secretShape and
// ValidSecretFormat with the per-byte reference on every byte value at
// every position of a valid secret, and on random damage.
func TestSecretShapeAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 41))
	check := func(b []byte) {
		t.Helper()
		shape, sum := refValidSecretFormat(b)
		if secretShape(b) != shape || ValidSecretFormat(b) != (shape && sum) {
			t.Fatalf("%q: secretShape %v ValidSecretFormat %v, want %v %v", b, secretShape(b), ValidSecretFormat(b), shape, shape && sum)
		}
	}
	for range 20 {
		s, _ := NewSecret()
		for pos := range SecretLen {
			for c := range 256 {
				b := []byte(s)
				b[pos] = byte(c)
				check(b)
			}
		}
	}
	for range 100000 {
		s, _ := NewSecret()
		b := []byte(s)
		for k := r.IntN(4); k > 0; k-- {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
		if r.IntN(8) == 0 {
			b = b[:r.IntN(len(b)+1)]
		}
		check(b)
	}
}
