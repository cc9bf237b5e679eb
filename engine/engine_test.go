package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// newTestKey returns a key with a fresh secret and the given allowlist.
func newTestKey(t testing.TB, scopes []string, cidrs ...string) (*Key, string) {
	t.Helper()
	in := make([]EntryInput, len(cidrs))
	for i, c := range cidrs {
		in[i] = EntryInput{CIDR: c, Label: fmt.Sprintf("entry %d", i)}
	}
	entries, err := Policy{}.BuildAllowlist(in)
	if err != nil {
		t.Fatal(err)
	}
	secret, hint := NewSecret()
	return &Key{
		ID: NewKeyID(), Name: "test", Scopes: scopes, Hash: HashSecret([]byte(secret)),
		Hint: hint, CreatedAt: now, Allowlist: entries,
	}, secret
}

func TestSecretFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s, hint := NewSecret()
		if len(s) != SecretLen || !strings.HasPrefix(s, "kg_") || !strings.HasPrefix(s, hint) || len(hint) != 11 {
			t.Fatalf("NewSecret() = %q, %q: bad shape", s, hint)
		}
		if !ValidSecretFormat([]byte(s)) {
			t.Fatalf("ValidSecretFormat(%q) = false for a fresh secret", s)
		}
		if seen[s] {
			t.Fatalf("NewSecret repeated %q", s)
		}
		seen[s] = true
		// Every single-character typo in the random part or checksum is caught.
		b := []byte(s)
		for i := len(SecretPrefix); i < len(b); i++ {
			orig := b[i]
			b[i] = base62[(strings.IndexByte(base62, orig)+1)%62]
			if ValidSecretFormat(b) {
				t.Fatalf("ValidSecretFormat accepted a typo at %d: %q", i, b)
			}
			b[i] = orig
		}
	}
	for _, bad := range []string{"", "kg_", "kg_short", strings.Repeat("a", SecretLen), "KG_" + strings.Repeat("a", SecretLen-3), "kg_" + strings.Repeat("!", SecretLen-3)} {
		if ValidSecretFormat([]byte(bad)) {
			t.Errorf("ValidSecretFormat(%q) = true", bad)
		}
	}
}

func TestIDs(t *testing.T) {
	if id := NewKeyID(); !strings.HasPrefix(id, "key_") || len(id) != 20 {
		t.Errorf("NewKeyID() = %q", id)
	}
	if id := NewEntryID(); !strings.HasPrefix(id, "ent_") || len(id) != 16 {
		t.Errorf("NewEntryID() = %q", id)
	}
}

func TestDecisionOrder(t *testing.T) {
	e := New()
	restricted, rs := newTestKey(t, []string{"read"}, "203.0.113.0/24", "2001:db8::1")
	open, os := newTestKey(t, []string{"read", "write"})
	revoked, vs := newTestKey(t, []string{"read"}, "203.0.113.0/24")
	revoked.RevokedAt = now.Add(-time.Hour)
	expired, xs := newTestKey(t, nil)
	expired.ExpiresAt = now
	future, fs := newTestKey(t, nil)
	future.ExpiresAt = now.Add(time.Second)
	e.Load([]*Key{restricted, open, revoked, expired, future}, 7)
	if e.Snapshot().Len() != 5 || e.Snapshot().Seq() != 7 {
		t.Fatalf("Len %d Seq %d, want 5, 7", e.Snapshot().Len(), e.Snapshot().Seq())
	}
	unknown, _ := NewSecret()
	// One character changed: the last, to x unless it is x already
	// (then the "typo" was the secret itself, 1 run in 62).
	typo := rs[:len(rs)-1] + "x"
	if typo == rs {
		typo = rs[:len(rs)-1] + "y"
	}
	ip := netip.MustParseAddr
	tests := []struct {
		name   string
		secret string
		scope  string
		addr   netip.Addr
		want   Decision
		key    *Key
		entry  string
	}{
		{"allowed v4", rs, "read", ip("203.0.113.77"), Allow, restricted, "203.0.113.0/24"},
		{"allowed v4-mapped", rs, "", ip("::ffff:203.0.113.5"), Allow, restricted, "203.0.113.0/24"},
		{"allowed v6", rs, "", ip("2001:db8::1"), Allow, restricted, "2001:db8::1/128"},
		{"blocked v4", rs, "read", ip("198.51.100.1"), DenyIP, restricted, ""},
		{"blocked v6", rs, "read", ip("2001:db8::2"), DenyIP, restricted, ""},
		{"zoned never matches", rs, "", ip("2001:db8::1%eth0"), DenyIP, restricted, ""},
		{"invalid addr", rs, "", netip.Addr{}, DenyIP, restricted, ""},
		{"scope before ip", rs, "write", ip("198.51.100.1"), DenyScope, restricted, ""},
		{"empty allowlist allows all", os, "write", ip("198.51.100.1"), Allow, open, ""},
		{"empty allowlist, bad addr", os, "", netip.Addr{}, Allow, open, ""},
		{"unknown key from allowed ip", unknown, "", ip("203.0.113.5"), DenyInvalidKey, nil, ""},
		{"garbage key", "not-a-key", "", ip("203.0.113.5"), DenyInvalidKey, nil, ""},
		{"typo key", typo, "", ip("203.0.113.5"), DenyInvalidKey, nil, ""},
		{"revoked key, allowed ip", vs, "read", ip("203.0.113.5"), DenyInvalidKey, revoked, ""},
		{"revoked key beats scope and ip", vs, "admin", ip("198.51.100.1"), DenyInvalidKey, revoked, ""},
		{"expired at the instant", xs, "", ip("203.0.113.5"), DenyInvalidKey, expired, ""},
		{"not yet expired", fs, "", ip("203.0.113.5"), Allow, future, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.Check([]byte(tt.secret), []byte(tt.scope), tt.addr, now)
			if r.Decision != tt.want {
				t.Errorf("decision %v, want %v", r.Decision, tt.want)
			}
			if (r.Key == nil) != (tt.key == nil) || (r.Key != nil && r.Key.ID() != tt.key.ID) {
				t.Errorf("key %v, want %v", r.Key, tt.key)
			}
			got := ""
			if i := r.EntryIndex(); i >= 0 {
				got = tt.key.Allowlist[i].CIDR()
				if r.EntryID() != tt.key.Allowlist[i].ID {
					t.Errorf("entry id %q, want %q", r.EntryID(), tt.key.Allowlist[i].ID)
				}
			}
			if got != tt.entry {
				t.Errorf("entry %q, want %q", got, tt.entry)
			}
		})
	}
}

func TestDecisionStrings(t *testing.T) {
	if DenyIP.Code() != "IP_NOT_ALLOWED" || DenyIP.Message() != "Request IP address is not in the API key's allowlist" {
		t.Errorf("DenyIP code/message = %q / %q", DenyIP.Code(), DenyIP.Message())
	}
	for d, want := range map[Decision]string{Allow: "allow", DenyInvalidKey: "invalid_key", DenyScope: "insufficient_scope", DenyIP: "ip_not_allowed", 9: "unknown"} {
		if d.String() != want {
			t.Errorf("%d.String() = %q, want %q", d, d.String(), want)
		}
	}
}

func TestPutRemoveApply(t *testing.T) {
	e := New()
	k, s := newTestKey(t, nil, "203.0.113.0/24")
	e.Put(k)
	addr := netip.MustParseAddr("198.51.100.1")
	if r := e.Check([]byte(s), nil, addr, now); r.Decision != DenyIP {
		t.Fatalf("before edit: %v", r.Decision)
	}
	before := e.Snapshot()
	k2 := k.Clone()
	k2.Allowlist = append(k2.Allowlist, Entry{ID: "ent_new", Prefix: netip.MustParsePrefix("198.51.100.0/24")})
	e.Apply(42, []*Key{k2}, nil)
	if r := e.Check([]byte(s), nil, addr, now); r.Decision != Allow || r.EntryID() != "ent_new" {
		t.Fatalf("after edit: %v %q", r.Decision, r.EntryID())
	}
	if r := before.Check([]byte(s), nil, addr, now); r.Decision != DenyIP {
		t.Fatalf("old snapshot changed: %v", r.Decision)
	}
	if e.Snapshot().Len() != 1 || e.Snapshot().Seq() != 42 {
		t.Fatalf("Len %d Seq %d after replace", e.Snapshot().Len(), e.Snapshot().Seq())
	}
	e.Remove(k.Hash)
	if r := e.Check([]byte(s), nil, addr, now); r.Decision != DenyInvalidKey {
		t.Fatalf("after remove: %v", r.Decision)
	}
	if e.Snapshot().Len() != 0 || e.Snapshot().Seq() != 42 {
		t.Fatalf("Len %d Seq %d after remove", e.Snapshot().Len(), e.Snapshot().Seq())
	}
	e.Remove(k.Hash) // absent: no-op
}

func TestSnapshotManyKeys(t *testing.T) {
	const n = 20000
	keys := make([]*Key, n)
	secrets := make([]string, n)
	for i := range keys {
		keys[i], secrets[i] = newTestKey(t, nil, fmt.Sprintf("203.0.%d.%d", i/250, i%250+1))
	}
	e := New()
	e.Load(keys[:n/2], 1)
	for _, k := range keys[n/2:] {
		e.Put(k)
	}
	if got := e.Snapshot().Len(); got != n {
		t.Fatalf("Len = %d, want %d", got, n)
	}
	count := 0
	e.Snapshot().Range(func(*KeyInfo) bool { count++; return true })
	if count != n {
		t.Fatalf("Range visited %d, want %d", count, n)
	}
	for i, s := range secrets {
		a := keys[i].Allowlist[0].Prefix.Addr()
		if r := e.Check([]byte(s), nil, a, now); r.Decision != Allow || r.Key.ID() != keys[i].ID {
			t.Fatalf("key %d: %v", i, r.Decision)
		}
		if k := e.Snapshot().Lookup(keys[i].Hash); k == nil || k.ID() != keys[i].ID {
			t.Fatalf("Lookup key %d failed", i)
		}
	}
	for _, k := range keys[:n/2] {
		e.Remove(k.Hash)
	}
	if got := e.Snapshot().Len(); got != n/2 {
		t.Fatalf("Len after removes = %d, want %d", got, n/2)
	}
	for i, s := range secrets {
		want := Allow
		if i < n/2 {
			want = DenyInvalidKey
		}
		if r := e.Check([]byte(s), nil, keys[i].Allowlist[0].Prefix.Addr(), now); r.Decision != want {
			t.Fatalf("key %d after removes: %v, want %v", i, r.Decision, want)
		}
	}
}

// TestConcurrentSwapRace has readers check continuously while a writer swaps
// a key's allowlist between two states; every reader must see exactly one of
// the published states, never a mix or a state never published.
func TestConcurrentSwapRace(t *testing.T) {
	e := New()
	a, s := newTestKey(t, []string{"read"}, "203.0.113.0/24")
	b := a.Clone()
	b.Allowlist, _ = Policy{}.BuildAllowlist([]EntryInput{{CIDR: "198.51.100.0/24"}})
	b.Scopes = []string{"write"}
	e.Put(a)
	inA, inB := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.9")
	var stop atomic.Bool
	var wg sync.WaitGroup
	var checks atomic.Int64
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				snap := e.Snapshot()
				ra := snap.Check([]byte(s), nil, inA, now)
				rb := snap.Check([]byte(s), nil, inB, now)
				stateA := ra.Decision == Allow && rb.Decision == DenyIP && ra.Key.HasScope([]byte("read"))
				stateB := ra.Decision == DenyIP && rb.Decision == Allow && rb.Key.HasScope([]byte("write"))
				if !stateA && !stateB {
					t.Errorf("unpublished state: %v %v", ra.Decision, rb.Decision)
					return
				}
				checks.Add(2)
			}
		})
	}
	for i := range 2000 {
		if i%2 == 0 {
			e.Put(b)
		} else {
			e.Put(a)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d checks during 2000 swaps", checks.Load())
}
