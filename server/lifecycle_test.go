package server

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/golden"
	"github.com/keygate/keygate/usagelog"
)

func startClocked(t *testing.T, mod func(*Config)) (*testServer, *testClock) {
	t.Helper()
	clock := &testClock{}
	ts := startServer(t, func(c *Config) {
		c.Now = clock.Now
		if mod != nil {
			mod(c)
		}
	})
	return ts, clock
}

// decode unmarshals r's body into v.
func decode(t *testing.T, r response, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body %s", r.body)
}

func errMessage(t *testing.T, r response) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if d, ok := e["details"].([]any); ok && len(d) > 0 {
		b, _ := json.Marshal(d)
		msg += " " + string(b)
	}
	return msg
}

func (ts *testServer) logs(t *testing.T, query string) []usagelog.Record {
	t.Helper()
	r := ts.admin(t, "GET", "/v1/logs?"+query, nil)
	wantStatus(t, r, 200, "logs "+query)
	var p usagelog.Page
	decode(t, r, &p)
	return p.Items
}

func TestReportOnlyAPI(t *testing.T) {
	ts, _ := startClocked(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "ro", "scopes": []string{"orders:read"}, "report_only": true,
		"allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	wantStatus(t, ts.check(t, secret, "198.51.100.7", "orders:read"), 200, "report-only miss is allowed")
	wantStatus(t, ts.check(t, secret, "198.51.100.7", "orders:write"), 403, "scope still enforced")
	wantStatus(t, ts.check(t, "kg_nope", "198.51.100.7", ""), 401, "invalid key still 401")
	wantStatus(t, ts.check(t, secret, "203.0.113.7", "orders:read"), 200, "listed address")

	items := ts.logs(t, "key_id="+id+"&code=IP_NOT_ALLOWED")
	require.Len(t, items, 1)
	assert.Equal(t, 200, items[0].Status)
	assert.True(t, items[0].ReportOnly)
	assert.Equal(t, secret[:11], items[0].SecretHint, "the log says which secret was used")

	m := ts.admin(t, "GET", "/metrics", nil)
	assert.Contains(t, string(m.body), `keygate_decisions_total{outcome="ip_not_allowed_reported"} 1`)

	var k keyJSON
	decode(t, ts.admin(t, "GET", "/v1/keys/"+id, nil), &k)
	assert.True(t, k.ReportOnly)
	require.NotNil(t, k.WouldHaveBlocked24h)
	assert.Equal(t, impactJSON{Requests: 1, Addresses: 1}, *k.WouldHaveBlocked24h)
	var list struct{ Items []keyJSON }
	decode(t, ts.admin(t, "GET", "/v1/keys", nil), &list)
	require.Len(t, list.Items, 1)
	assert.Equal(t, impactJSON{Requests: 1, Addresses: 1}, *list.Items[0].WouldHaveBlocked24h)

	r := ts.admin(t, "PATCH", "/v1/keys/"+id, map[string]any{"report_only": "yes"})
	wantStatus(t, r, 400, "report_only not a bool")
	assert.Contains(t, errMessage(t, r), "report_only")
	wantStatus(t, ts.admin(t, "PATCH", "/v1/keys/"+id, map[string]any{"report_only": false}), 200, "enforce")
	wantStatus(t, ts.check(t, secret, "198.51.100.7", "orders:read"), 403, "enforced at once")
	items = ts.logs(t, "key_id="+id+"&code=IP_NOT_ALLOWED")
	require.Len(t, items, 2)
	assert.False(t, items[0].ReportOnly)
	assert.Equal(t, 403, items[0].Status)
}

func TestEntryExpiryAndDisabledAPI(t *testing.T) {
	ts, clock := startClocked(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "198.51.100.0/24"}}})
	now := clock.Now().UTC()
	exp := now.Add(3 * time.Hour).Truncate(time.Second)

	bad := []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"in the past", map[string]any{"entries": []map[string]any{{"cidr": "203.0.113.5", "expires_at": now.Add(-time.Minute)}}}, 422, "invalid_expiry"},
		{"too far", map[string]any{"entries": []map[string]any{{"cidr": "203.0.113.5", "expires_at": now.Add(11 * 365 * 24 * time.Hour)}}}, 422, "invalid_expiry"},
		{"not a time", map[string]any{"entries": []map[string]any{{"cidr": "203.0.113.5", "expires_at": "tomorrow"}}}, 400, "expires_at"},
		{"disabled not a bool", map[string]any{"entries": []map[string]any{{"cidr": "203.0.113.5", "disabled": "no"}}}, 400, "disabled"},
	}
	for _, tt := range bad {
		r := ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist", tt.body)
		wantStatus(t, r, tt.status, tt.name)
		assert.Contains(t, errMessage(t, r), tt.want, tt.name)
	}
	wantStatus(t, ts.check(t, secret, "198.51.100.1", ""), 200, "nothing of a refused list applied")

	r := ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist", map[string]any{"entries": []map[string]any{
		{"cidr": "203.0.113.5", "label": "contractor", "expires_at": exp},
		{"cidr": "198.51.100.0/24", "disabled": true},
	}})
	wantStatus(t, r, 200, "temporary and disabled entries")
	var al allowlistJSON
	decode(t, r, &al)
	require.Len(t, al.Entries, 2)
	assert.Equal(t, "active", al.Entries[0].State)
	assert.Equal(t, exp, *al.Entries[0].ExpiresAt)
	assert.Equal(t, "disabled", al.Entries[1].State)

	wantStatus(t, ts.check(t, secret, "203.0.113.5", ""), 200, "temporary entry before expiry")
	wantStatus(t, ts.check(t, secret, "198.51.100.1", ""), 403, "disabled entry matches nothing")
	clock.Advance(exp.Sub(clock.Now()))
	wantStatus(t, ts.check(t, secret, "203.0.113.5", ""), 403, "from the expiry instant, with no write")
	wantStatus(t, ts.check(t, secret, "192.0.2.1", ""), 403, "all entries off or expired: still blocks")

	var got struct {
		Entries []entryHitsJSON `json:"entries"`
	}
	decode(t, ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil), &got)
	require.Len(t, got.Entries, 2, "an expired entry stays listed")
	assert.Equal(t, "expired", got.Entries[0].State)

	// Resending the list with the expired entry unchanged is accepted;
	// switching the disabled one on (PATCH) makes it match again.
	wantStatus(t, ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist", map[string]any{"entries": []map[string]any{
		{"id": got.Entries[0].ID, "cidr": "203.0.113.5/32", "label": "contractor", "expires_at": exp},
		{"id": got.Entries[1].ID, "cidr": "198.51.100.0/24", "disabled": true},
	}}), 200, "resend with the passed expiry unchanged")
	wantStatus(t, ts.admin(t, "PATCH", "/v1/keys/"+id+"/allowlist/"+got.Entries[1].ID, map[string]any{"disabled": false}), 200, "switch on")
	wantStatus(t, ts.check(t, secret, "198.51.100.1", ""), 200, "switched on")
	r = ts.admin(t, "PATCH", "/v1/keys/"+id+"/allowlist/"+got.Entries[0].ID, map[string]any{"expires_at": clock.Now().Add(-time.Second)})
	wantStatus(t, r, 422, "PATCH to a past expiry")
	wantStatus(t, ts.admin(t, "PATCH", "/v1/keys/"+id+"/allowlist/"+got.Entries[0].ID, map[string]any{"expires_at": nil}), 200, "clear the expiry")
	wantStatus(t, ts.check(t, secret, "203.0.113.5", ""), 200, "no longer expires")
	r = ts.admin(t, "POST", "/v1/keys/"+id+"/allowlist", map[string]any{"cidr": "192.0.2.0/24", "expires_at": clock.Now().Add(time.Hour)})
	wantStatus(t, r, 201, "add a temporary entry")
	var e entryJSON
	decode(t, r, &e)
	assert.NotNil(t, e.ExpiresAt)
}

func TestEntryHitsAPI(t *testing.T) {
	ts, clock := startClocked(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}, {"cidr": "198.51.100.7"}}})
	for range 3 {
		ts.check(t, secret, "203.0.113.9", "")
	}
	last := clock.Now().UTC()
	ts.check(t, secret, "192.0.2.1", "")
	var got struct {
		Entries []entryHitsJSON `json:"entries"`
	}
	decode(t, ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil), &got)
	require.Len(t, got.Entries, 2)
	assert.Equal(t, 3, got.Entries[0].Hits24h)
	require.NotNil(t, got.Entries[0].LastSeenAt)
	assert.WithinDuration(t, last, *got.Entries[0].LastSeenAt, time.Second)
	assert.Equal(t, 0, got.Entries[1].Hits24h, "an entry nobody uses")
	assert.Nil(t, got.Entries[1].LastSeenAt)
	clock.Advance(25 * time.Hour)
	decode(t, ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil), &got)
	assert.Equal(t, 0, got.Entries[0].Hits24h, "hits older than 24 h do not count")
}

// TestDryRunMatchesRealPut: what a dry run predicts is what the real PUT
// then does to the same traffic replayed.
func TestDryRunMatchesRealPut(t *testing.T) {
	ts, _ := startClocked(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		oldList := []map[string]any{{"cidr": "203.0.113.0/24"}, {"cidr": "198.51.100.0/25"}}
		id, secret := ts.createKey(t, map[string]any{"name": fmt.Sprint("k", round), "allowlist": oldList})
		counts := map[string]int{}
		for range 60 {
			ip := fmt.Sprintf("%s.%d", []string{"203.0.113", "198.51.100", "192.0.2"}[r.IntN(3)], r.IntN(256))
			counts[ip]++
			ts.check(t, secret, ip, "")
		}
		var newList []map[string]any
		for _, c := range []string{"203.0.113.0/25", "198.51.100.0/24", "192.0.2.128/26", "203.0.113.200"} {
			if r.IntN(2) == 0 {
				newList = append(newList, map[string]any{"cidr": c})
			}
		}
		body := map[string]any{"entries": newList}
		if newList == nil {
			body["entries"] = []any{}
		}
		dr := ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist?dry_run=true", body)
		wantStatus(t, dr, 200, "dry run")
		var d dryRunJSON
		decode(t, dr, &d)
		// Nothing saved.
		var al allowlistJSON
		decode(t, ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil), &al)
		require.Len(t, al.Entries, 2, "a dry run saves nothing")

		before := map[string]int{}
		for ip, n := range counts {
			before[ip] = ts.check(t, secret, ip, "").status
			_ = n
		}
		wantStatus(t, ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist", body), 200, "real PUT")
		var want dryRunJSON
		for ip, n := range counts {
			after := ts.check(t, secret, ip, "").status
			switch {
			case before[ip] == 200 && after == 403:
				want.NewlyBlocked.Requests += n
				want.NewlyBlocked.Addresses++
			case before[ip] == 403 && after == 200:
				want.NewlyAllowed.Requests += n
				want.NewlyAllowed.Addresses++
			default:
				want.Unchanged.Requests += n
				want.Unchanged.Addresses++
			}
		}
		assert.Equal(t, want.NewlyBlocked.impactJSON, d.NewlyBlocked.impactJSON, "round %d newly blocked", round)
		assert.Equal(t, want.NewlyAllowed.impactJSON, d.NewlyAllowed.impactJSON, "round %d newly allowed", round)
		assert.Equal(t, want.Unchanged, d.Unchanged, "round %d unchanged", round)
	}

	id, _ := ts.createKey(t, map[string]any{"name": "bad"})
	badBody := map[string]any{"entries": []map[string]any{{"cidr": "203.0.113.5/24"}, {"cidr": "10.0.0.0/8"}}}
	real := ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist", badBody)
	dry := ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist?dry_run=true", badBody)
	wantStatus(t, dry, 422, "dry run of a bad list")
	assert.Equal(t, string(real.body), string(dry.body), "the same 422 as a real PUT")
	wantStatus(t, ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist?dry_run=maybe", map[string]any{"entries": []any{}}), 400, "dry_run not a bool")
}

func TestSuggestionsAPI(t *testing.T) {
	ts, _ := startClocked(t, func(c *Config) {
		c.TrustedProxies = []string{"198.51.100.250/32"}
		c.AllowPrivateRanges = false
	})
	id, secret := ts.createKey(t, map[string]any{"name": "k", "report_only": true, "allowlist": []map[string]string{{"cidr": "203.0.113.4/31"}}})
	for _, ip := range []string{"203.0.113.4", "203.0.113.5", "203.0.113.5", "203.0.113.6", "203.0.113.7", "203.0.113.77", "198.51.100.250", "10.1.2.3", "2001:db8::1"} {
		wantStatus(t, ts.check(t, secret, ip, ""), 200, "report-only "+ip)
	}
	ts.check(t, "kg_nope", "192.0.2.1", "") // not this key's traffic
	var got struct {
		Suggestions []suggestionJSON `json:"suggestions"`
		Truncated   bool             `json:"truncated"`
	}
	decode(t, ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist/suggestions?since=1h", nil), &got)
	by := map[string]suggestionJSON{}
	for _, s := range got.Suggestions {
		by[s.CIDR] = s
	}
	require.Contains(t, by, "203.0.113.4/30")
	assert.Equal(t, 5, by["203.0.113.4/30"].Requests)
	assert.Equal(t, 4, by["203.0.113.4/30"].Addresses)
	assert.False(t, by["203.0.113.4/30"].Allowed, "only half of it is allowed now")
	assert.Contains(t, by, "203.0.113.77/32")
	assert.Equal(t, []string{"trusted_proxy"}, by["198.51.100.250/32"].Flags)
	assert.Equal(t, []string{"non_public"}, by["10.1.2.3/32"].Flags)
	assert.Contains(t, by, "2001:db8::1/128")
	assert.Equal(t, "203.0.113.4/30", got.Suggestions[0].CIDR, "busiest first")

	decode(t, ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist/suggestions?aggregate=true", nil), &got)
	by = map[string]suggestionJSON{}
	for _, s := range got.Suggestions {
		by[s.CIDR] = s
	}
	require.Contains(t, by, "203.0.113.0/24")
	assert.Equal(t, 6, by["203.0.113.0/24"].Requests)
	assert.Contains(t, by, "2001:db8::/48")

	for _, q := range []string{"since=yesterday", "since=-1h", "since=800h", "since=2999-01-01T00:00:00Z", "aggregate=perhaps"} {
		r := ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist/suggestions?"+q, nil)
		wantStatus(t, r, 400, q)
		assert.Contains(t, errMessage(t, r), strings.Split(q, "=")[0], q)
	}
	wantStatus(t, ts.admin(t, "GET", "/v1/keys/key_nope/allowlist/suggestions", nil), 404, "unknown key")
}

// TestSuggestGroupingBruteForce checks suggest's ranges on random address
// sets: each class's ranges hold exactly its addresses (widened when
// aggregating), as few as the brute-force cover, and the counts add up.
func TestSuggestGroupingBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for round := range 200 {
		var addrs []usagelog.AddrStat
		seen := map[netip.Addr]bool{}
		total := 0
		for range 1 + r.IntN(60) {
			a := netip.AddrFrom4([4]byte{203, 0, 112 + byte(r.IntN(2)), byte(r.IntN(256))})
			if seen[a] {
				continue
			}
			seen[a] = true
			n := 1 + r.IntN(5)
			total += n
			addrs = append(addrs, usagelog.AddrStat{Addr: a, Requests: n, FirstSeen: time.Unix(int64(r.IntN(100)), 0), LastSeen: time.Unix(200, 0)})
		}
		proxy := func(a netip.Addr) bool { return a.As4()[3]%17 == 0 }
		out := suggest(addrs, false, func(netip.Addr) bool { return false }, proxy, func(netip.Addr) bool { return false })
		sum := 0
		for _, flagged := range []bool{false, true} {
			set := map[netip.Addr]bool{}
			for a := range seen {
				if proxy(a) == flagged {
					set[a] = true
				}
			}
			want := golden.Cover(set, engine.MinPrefixV4, engine.MinPrefixV6)
			var got []string
			for _, s := range out {
				if (len(s.Flags) > 0) == flagged {
					got = append(got, s.CIDR)
				}
			}
			var wantS []string
			for _, p := range want {
				wantS = append(wantS, p.String())
			}
			assert.ElementsMatch(t, wantS, got, "round %d proxy=%v", round, flagged)
		}
		for _, s := range out {
			sum += s.Requests
		}
		assert.Equal(t, total, sum, "round %d: every request counted once", round)
	}
}

func TestRotateAPI(t *testing.T) {
	ts, clock := startClocked(t, nil)
	id, old := ts.createKey(t, map[string]any{"name": "k", "scopes": []string{"read"}, "allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	for _, tt := range []struct {
		body   any
		status int
		want   string
	}{
		{map[string]any{}, 400, "overlap"},
		{map[string]any{"overlap": "soon"}, 400, "overlap"},
		{map[string]any{"overlap": 3600}, 400, "overlap"},
		{map[string]any{"overlap": "169h"}, 422, "overlap"},
		{map[string]any{"overlap": "-1h"}, 422, "overlap"},
		{map[string]any{"overlap": "1h", "extra": 1}, 400, "extra"},
	} {
		r := ts.admin(t, "POST", "/v1/keys/"+id+"/rotate", tt.body)
		wantStatus(t, r, tt.status, fmt.Sprint(tt.body))
		assert.Contains(t, errMessage(t, r), tt.want)
	}
	wantStatus(t, ts.check(t, old, "203.0.113.1", "read"), 200, "nothing rotated by a refused request")

	r := ts.admin(t, "POST", "/v1/keys/"+id+"/rotate", map[string]any{"overlap": "24h"})
	wantStatus(t, r, 200, "rotate")
	var k keyJSON
	decode(t, r, &k)
	assert.Equal(t, id, k.ID, "the key keeps its id")
	require.NotEmpty(t, k.Secret)
	require.NotEqual(t, old, k.Secret)
	require.NotNil(t, k.PreviousSecret)
	assert.Equal(t, old[:11], k.PreviousSecret.Hint)
	assert.True(t, k.PreviousSecret.Active)

	wantStatus(t, ts.check(t, old, "203.0.113.1", "read"), 200, "old secret inside the overlap")
	wantStatus(t, ts.check(t, old, "192.0.2.1", "read"), 403, "old secret keeps the allowlist")
	wantStatus(t, ts.check(t, k.Secret, "203.0.113.1", "read"), 200, "new secret")
	clock.Advance(24*time.Hour - time.Second)
	wantStatus(t, ts.check(t, old, "203.0.113.1", "read"), 200, "old secret one second before the end")
	clock.Advance(time.Second)
	wantStatus(t, ts.check(t, old, "203.0.113.1", "read"), 401, "old secret after the overlap")
	wantStatus(t, ts.check(t, k.Secret, "203.0.113.1", "read"), 200, "new secret after the overlap")

	items := ts.logs(t, "key_id="+id+"&limit=3")
	require.Len(t, items, 3)
	assert.Equal(t, k.Secret[:11], items[0].SecretHint)
	assert.Equal(t, old[:11], items[1].SecretHint, "the rejected old secret is named")
	assert.Equal(t, 401, items[1].Status)

	r = ts.admin(t, "POST", "/v1/keys/"+id+"/rotate", map[string]any{"overlap": "0s"})
	wantStatus(t, r, 200, "rotate without overlap")
	var k2 keyJSON
	decode(t, r, &k2)
	wantStatus(t, ts.check(t, k.Secret, "203.0.113.1", "read"), 401, "no overlap: the previous secret stops at once")
	wantStatus(t, ts.check(t, k2.Secret, "203.0.113.1", "read"), 200, "newest secret")
	wantStatus(t, ts.admin(t, "DELETE", "/v1/keys/"+id, nil), 200, "revoke")
	wantStatus(t, ts.admin(t, "POST", "/v1/keys/"+id+"/rotate", map[string]any{"overlap": "1h"}), 409, "a revoked key cannot rotate")
	wantStatus(t, ts.admin(t, "POST", "/v1/keys/key_nope/rotate", map[string]any{"overlap": "1h"}), 404, "unknown key")
}

func TestLogsCodeFilter(t *testing.T) {
	ts, _ := startClocked(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	ts.check(t, secret, "203.0.113.1", "")
	ts.check(t, secret, "192.0.2.1", "")
	items := ts.logs(t, "key_id="+id+"&code=IP_NOT_ALLOWED")
	require.Len(t, items, 1)
	assert.Equal(t, 403, items[0].Status)
	items = ts.logs(t, "key_id="+id+"&code=none")
	require.Len(t, items, 1)
	assert.Equal(t, 200, items[0].Status)
	r := ts.admin(t, "GET", "/v1/logs?code=NOPE", nil)
	wantStatus(t, r, 400, "unknown code")
	assert.Contains(t, errMessage(t, r), "code")
}
