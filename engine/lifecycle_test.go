package engine

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/internal/golden"
)

func TestEntryExpiryAtTheInstant(t *testing.T) {
	k, secret := newTestKey(t, nil, "203.0.113.0/24", "203.0.113.5")
	exp := now.Add(3 * time.Hour)
	k.Allowlist[1].ExpiresAt = exp // the /32 expires, the /24 stays
	e := New()
	e.Load([]*Key{k}, 1)
	a := netip.MustParseAddr("203.0.113.5")
	r := e.Check([]byte(secret), nil, a, exp.Add(-time.Nanosecond))
	require.Equal(t, Allow, r.Decision)
	assert.Equal(t, k.Allowlist[1].ID, r.EntryID(), "one nanosecond before expiry the longer entry matches")
	r = e.Check([]byte(secret), nil, a, exp)
	require.Equal(t, Allow, r.Decision)
	assert.Equal(t, k.Allowlist[0].ID, r.EntryID(), "at the expiry instant the shorter live entry takes over")

	// Expire the /24 too: the list is not empty, so it blocks everything.
	k2 := k.Clone()
	k2.Allowlist[0].ExpiresAt = exp
	e.Apply(2, []*Key{k2}, nil)
	assert.Equal(t, Allow, e.Check([]byte(secret), nil, a, exp.Add(-1)).Decision)
	assert.Equal(t, DenyIP, e.Check([]byte(secret), nil, a, exp).Decision, "all entries expired: blocked, not unrestricted")
	assert.Equal(t, DenyIP, e.Check([]byte(secret), nil, netip.MustParseAddr("198.51.100.1"), exp).Decision)
}

func TestDisabledEntries(t *testing.T) {
	k, secret := newTestKey(t, nil, "203.0.113.0/24", "203.0.113.5")
	k.Allowlist[1].Disabled = true
	e := New()
	e.Load([]*Key{k}, 1)
	a := netip.MustParseAddr("203.0.113.5")
	r := e.Check([]byte(secret), nil, a, now)
	require.Equal(t, Allow, r.Decision)
	assert.Equal(t, k.Allowlist[0].ID, r.EntryID(), "a disabled entry never matches")
	k2 := k.Clone()
	k2.Allowlist[0].Disabled = true
	e.Apply(2, []*Key{k2}, nil)
	assert.Equal(t, DenyIP, e.Check([]byte(secret), nil, a, now).Decision, "all entries disabled: blocked")
}

func TestReportOnlyDecisions(t *testing.T) {
	k, secret := newTestKey(t, []string{"read"}, "203.0.113.0/24")
	k.ReportOnly = true
	e := New()
	e.Load([]*Key{k}, 1)
	in, out := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.1")
	tests := []struct {
		name   string
		secret string
		scope  string
		addr   netip.Addr
		want   Decision
	}{
		{"listed address", secret, "read", in, Allow},
		{"unlisted address is reported, not blocked", secret, "read", out, AllowReported},
		{"missing scope is enforced", secret, "write", out, DenyScope},
		{"invalid key is enforced", "kg_nope", "", out, DenyInvalidKey},
	}
	for _, tt := range tests {
		r := e.Check([]byte(tt.secret), []byte(tt.scope), tt.addr, now)
		assert.Equal(t, tt.want, r.Decision, tt.name)
	}
	assert.True(t, AllowReported.Allowed())
	assert.Equal(t, "IP_NOT_ALLOWED", AllowReported.Code())
	assert.Equal(t, "ip_not_allowed_reported", AllowReported.String())
	k.RevokedAt = now
	e.Apply(2, []*Key{k}, nil)
	assert.Equal(t, DenyInvalidKey, e.Check([]byte(secret), nil, out, now).Decision, "a revoked report-only key is 401")
}

func TestRotationOverlap(t *testing.T) {
	k, old := newTestKey(t, nil)
	e := New()
	e.Load([]*Key{k}, 1)
	r := k.Clone()
	fresh := r.Rotate(now, time.Hour)
	e.Apply(2, []*Key{r}, k.Hashes())
	a := netip.MustParseAddr("198.51.100.1")
	got := e.Check([]byte(old), nil, a, now.Add(time.Hour-1))
	assert.Equal(t, Allow, got.Decision, "old secret inside the overlap")
	assert.True(t, got.Prev)
	assert.Equal(t, k.Hint, got.SecretHint())
	assert.Equal(t, r.ID, got.Key.ID(), "same key id")
	got = e.Check([]byte(old), nil, a, now.Add(time.Hour))
	assert.Equal(t, DenyInvalidKey, got.Decision, "old secret from the end of the overlap")
	got = e.Check([]byte(fresh), nil, a, now.Add(time.Hour))
	assert.Equal(t, Allow, got.Decision, "new secret")
	assert.False(t, got.Prev)
	assert.Equal(t, r.Hint, got.SecretHint())

	// A second rotation drops the first secret at once.
	r2 := r.Clone()
	newest := r2.Rotate(now, time.Hour)
	e.Apply(3, []*Key{r2}, r.Hashes())
	assert.Equal(t, DenyInvalidKey, e.Check([]byte(old), nil, a, now).Decision)
	assert.Equal(t, Allow, e.Check([]byte(fresh), nil, a, now).Decision)
	assert.Equal(t, Allow, e.Check([]byte(newest), nil, a, now).Decision)
	assert.Equal(t, 1, e.Snapshot().Len())
}

// TestTrieDifferentialExpiry checks MatchAt against the reference over
// random lists whose entries expire at random instants or are off.
func TestTrieDifferentialExpiry(t *testing.T) {
	rounds := 4000
	if testing.Short() {
		rounds = 300
	}
	r := rand.New(rand.NewPCG(3, 4))
	for round := range rounds {
		entries := randEntries(r, 1+r.IntN(MaxEntries))
		for i := range entries {
			switch r.IntN(4) {
			case 0:
				entries[i].ExpiresAt = now.Add(time.Duration(r.IntN(5)) * time.Minute)
			case 1:
				entries[i].Disabled = r.IntN(3) == 0
			}
		}
		m := NewMatcher(entries)
		pfx := prefixesOf(entries)
		for _, at := range []time.Time{now.Add(-time.Minute), now, now.Add(time.Minute - 1), now.Add(2 * time.Minute), now.Add(time.Hour)} {
			live := make([]bool, len(entries))
			for i := range entries {
				live[i] = entries[i].Live(at)
			}
			for _, a := range probes(r, entries, 5) {
				if got, want := m.MatchAt(a, at), golden.MatchLive(pfx, live, a); got != want {
					t.Fatalf("round %d: MatchAt(%s, %s) = %d, want %d; entries %v", round, a, at, got, want, entries)
				}
			}
		}
	}
}

func TestCoverPrefixesAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 300 {
		aggregate := r.IntN(2) == 0
		set := map[netip.Addr]bool{}
		var in []netip.Prefix
		for range 1 + r.IntN(40) {
			var a netip.Addr
			if r.IntN(2) == 0 {
				// v4 within 203.0.112.0/22 (aggregated: /24s within 198.16.0.0/21)
				if aggregate {
					a = netip.AddrFrom4([4]byte{198, 16 + byte(r.IntN(2)), byte(r.IntN(4)), byte(r.Uint32())})
				} else {
					a = netip.AddrFrom4([4]byte{203, 0, 112 + byte(r.IntN(4)), byte(r.IntN(256))})
				}
			} else {
				b := [16]byte{0x20, 0x01, 0x0d, 0xb8}
				if aggregate {
					b[5] = byte(r.IntN(8))
				} else {
					b[15] = byte(r.IntN(64))
				}
				a = netip.AddrFrom16(b)
			}
			p := netip.PrefixFrom(a, a.BitLen())
			if aggregate {
				p = netip.PrefixFrom(a, map[bool]int{true: 24, false: 48}[a.Is4()]).Masked()
			}
			in = append(in, p)
			// The brute force walks addresses: for aggregated v6 /48s, it
			// works at /48 granularity by mapping each /48 to one address.
			if aggregate && a.Is6() {
				set[netip.AddrFrom4([4]byte{10, 0, 0, p.Addr().As16()[5]})] = true
				continue
			}
			for x := p.Addr(); p.Contains(x); x = x.Next() {
				set[x] = true
			}
		}
		got := CoverPrefixes(in)
		gotSet := map[netip.Addr]bool{}
		var gotN int
		for _, p := range got {
			if aggregate && p.Addr().Is6() {
				// 2001:db8:0:X::/N maps to 10.0.0.X/(N-48+32) in the brute force's units.
				require.GreaterOrEqual(t, p.Bits(), MinPrefixV6)
				bits := p.Bits() - 48 + 32
				q := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, p.Addr().As16()[5]}), bits)
				for x := q.Addr(); q.Contains(x); x = x.Next() {
					gotSet[x] = true
				}
				gotN++
				continue
			}
			for x := p.Addr(); p.Contains(x); x = x.Next() {
				gotSet[x] = true
			}
			gotN++
		}
		require.Equal(t, set, gotSet, "round %d: the cover holds exactly the input's addresses", round)
		want := golden.Cover(set, MinPrefixV4, 0)
		assert.Equal(t, len(want), gotN, "round %d: fewest prefixes (got %v, brute force %v)", round, got, want)
	}
}
