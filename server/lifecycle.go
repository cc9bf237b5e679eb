package server

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

// The allowlist lifecycle endpoints: rotation, dry run, suggestions, and
// the report-only summary of the key views.

// impactWindow is the traffic a dry run and the report-only summary
// look at.
const impactWindow = 24 * time.Hour

// maxSuggestWindow is the longest window a suggestions request may ask.
const maxSuggestWindow = 31 * 24 * time.Hour

// addReportOnlyImpact sets, for a report-only key, what its allowlist
// reported in the last 24 hours. A failed read leaves it unset: the key
// view does not fail for a summary.
func (s *Server) addReportOnlyImpact(ctx context.Context, v *keyJSON, k *engine.Key, now time.Time) {
	if !k.ReportOnly {
		return
	}
	addrs, _, err := s.store.Traffic(ctx, k.ID, now.Add(-impactWindow), usagelog.MaxTrafficAddrs)
	if err != nil {
		s.log.Warn("report-only summary", "key", k.ID, "err", err)
		return
	}
	var im impactJSON
	for _, a := range addrs {
		if a.Reported > 0 {
			im.Requests += a.Reported
			im.Addresses++
		}
	}
	v.WouldHaveBlocked24h = &im
}

type rotateRequest struct {
	Overlap *string `json:"overlap"`
}

// rotateKey serves POST /v1/keys/{id}/rotate: a new secret, shown once;
// the old one keeps working until the overlap ends.
func (s *Server) rotateKey(ctx *fasthttp.RequestCtx, id string) error {
	var req rotateRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Overlap == nil {
		return errorf(ErrBadRequest, `overlap is required: the body must be {"overlap":"24h"} (a duration from 0s to 168h)`)
	}
	overlap, err := time.ParseDuration(*req.Overlap)
	if err != nil {
		return errorf(ErrBadRequest, "overlap %q is not a duration: write it like 24h, 90m or 0s", *req.Overlap)
	}
	if overlap < 0 || overlap > engine.MaxRotationOverlap {
		return errorf(ErrInvalid, "overlap %s is out of range: it must be from 0s to 168h (7 days); nothing was changed", overlap)
	}
	var secret string
	now := s.cfg.Now()
	ch, err := s.keys.Commit(ctx, func() (store.Change, error) {
		return s.store.UpdateKey(ctx, id, actor, "key.rotate", func(k *engine.Key) error {
			if !k.RevokedAt.IsZero() {
				return errRevoked(id)
			}
			secret = k.Rotate(now, overlap)
			return nil
		})
	})
	if err != nil {
		return err
	}
	v := s.keyView(ch.After, now)
	v.Secret = secret
	writeJSON(ctx, fasthttp.StatusOK, v)
	return nil
}

// dryRunJSON is the answer of PUT .../allowlist?dry_run=true.
type dryRunJSON struct {
	DryRun  bool        `json:"dry_run"`
	KeyID   string      `json:"key_id"`
	Entries []entryJSON `json:"entries"`
	// Since is the start of the traffic looked at (the last 24 hours).
	Since        time.Time  `json:"since"`
	ReportOnly   bool       `json:"report_only"`
	NewlyBlocked impactList `json:"newly_blocked"`
	NewlyAllowed impactList `json:"newly_allowed"`
	Unchanged    impactJSON `json:"unchanged"`
	Truncated    bool       `json:"truncated"`
}

// impactList is an impactJSON with the busiest addresses named.
type impactList struct {
	impactJSON
	IPs []addrCount `json:"ips"`
}

type addrCount struct {
	IP       string `json:"ip"`
	Requests int    `json:"requests"`
}

// maxImpactIPs bounds the addresses a dry run names per bucket.
const maxImpactIPs = 50

// dryRunAllowlist validates entries as PUT would (the same errors) and
// answers what they would change on the key's last 24 hours of traffic,
// saving nothing.
func (s *Server) dryRunAllowlist(ctx *fasthttp.RequestCtx, id string, in []engine.EntryInput) error {
	k, err := s.store.GetKey(ctx, id)
	if err != nil {
		return err
	}
	if !k.RevokedAt.IsZero() {
		return errRevoked(id)
	}
	now := s.cfg.Now()
	entries, err := s.policy.MergeEntriesAt(now, k.Allowlist, in)
	if err != nil {
		return err
	}
	since := now.Add(-impactWindow)
	addrs, truncated, err := s.store.Traffic(ctx, k.ID, since, usagelog.MaxTrafficAddrs)
	if err != nil {
		return err
	}
	before, after := allowlistVerdict(k.Allowlist, now), allowlistVerdict(entries, now)
	out := dryRunJSON{DryRun: true, KeyID: k.ID, Entries: entriesJSON(entries, now), Since: since.UTC(), ReportOnly: k.ReportOnly, Truncated: truncated}
	for _, a := range addrs {
		was, will := before(a.Addr), after(a.Addr)
		var b *impactList
		switch {
		case was && !will:
			b = &out.NewlyBlocked
		case !was && will:
			b = &out.NewlyAllowed
		default:
			out.Unchanged.Requests += a.Requests
			out.Unchanged.Addresses++
			continue
		}
		b.Requests += a.Requests
		b.Addresses++
		b.IPs = append(b.IPs, addrCount{IP: a.Addr.String(), Requests: a.Requests})
	}
	for _, b := range []*impactList{&out.NewlyBlocked, &out.NewlyAllowed} {
		slices.SortFunc(b.IPs, func(x, y addrCount) int {
			return cmp.Or(cmp.Compare(y.Requests, x.Requests), strings.Compare(x.IP, y.IP))
		})
		b.IPs = b.IPs[:min(len(b.IPs), maxImpactIPs)]
		if b.IPs == nil {
			b.IPs = []addrCount{}
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
	return nil
}

// allowlistVerdict returns whether a list lets an address through at now,
// as the check decides it: an empty list allows all, else a live entry
// must match.
func allowlistVerdict(entries []engine.Entry, now time.Time) func(netip.Addr) bool {
	if len(entries) == 0 {
		return func(netip.Addr) bool { return true }
	}
	m := engine.NewMatcher(entries)
	return func(a netip.Addr) bool { return m.MatchAt(a, now) >= 0 }
}

// suggestionJSON is one range of addresses seen for a key.
type suggestionJSON struct {
	CIDR      string    `json:"cidr"`
	Requests  int       `json:"requests"`
	Addresses int       `json:"addresses"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Allowed: the current list lets every address of the range seen
	// through.
	Allowed bool `json:"allowed"`
	// Flags: "trusted_proxy" (a configured trusted proxy's own address
	// arrived as the client: the proxy's forwarding headers are likely
	// missing), "non_public" (a private or reserved range, which the
	// allowlist refuses and a public API never sees).
	Flags []string `json:"flags"`
}

// suggestions serves GET /v1/keys/{id}/allowlist/suggestions?since=&aggregate=.
func (s *Server) suggestions(ctx *fasthttp.RequestCtx, id string) error {
	now := s.cfg.Now()
	args := ctx.QueryArgs()
	since := now.Add(-impactWindow)
	if v := string(args.Peek("since")); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			if !t.Before(now) || now.Sub(t) > maxSuggestWindow {
				return errorf(ErrBadRequest, "since %q: must be in the past, at most 31 days ago", v)
			}
			since = t
		} else if d, err := time.ParseDuration(v); err == nil {
			if d <= 0 || d > maxSuggestWindow {
				return errorf(ErrBadRequest, "since %q: a duration must be positive and at most 744h (31 days)", v)
			}
			since = now.Add(-d)
		} else {
			return errorf(ErrBadRequest, "since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (24h)", v)
		}
	}
	aggregate := false
	switch v := string(args.Peek("aggregate")); v {
	case "true", "1":
		aggregate = true
	case "", "false", "0":
	default:
		return errorf(ErrBadRequest, "aggregate %q: want true or false", v)
	}
	k, err := s.store.GetKey(ctx, id)
	if err != nil {
		return err
	}
	addrs, truncated, err := s.store.Traffic(ctx, k.ID, since, usagelog.MaxTrafficAddrs)
	if err != nil {
		return err
	}
	out := suggest(addrs, aggregate, allowlistVerdict(k.Allowlist, now), s.live.Load().trusted.contains, s.nonPublic)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"key_id": k.ID, "since": since.UTC(), "aggregate": aggregate, "truncated": truncated, "suggestions": out,
	})
	return nil
}

// nonPublic reports whether an allowlist entry for a would be refused as
// a non-public range under the server's policy.
func (s *Server) nonPublic(a netip.Addr) bool {
	_, err := s.policy.ParseEntry(a.String())
	var ee *engine.EntryError
	return errors.As(err, &ee) && ee.Rule == engine.RulePrivate
}

// suggest groups the addresses into the fewest ranges that respect the
// allowlist floors (engine.CoverPrefixes), each address widened to its /24
// or /48 first when aggregate is set. Addresses that are trusted proxies,
// and non-public ones, are grouped apart from the rest so that a flag
// describes its whole range. Busiest first.
func suggest(addrs []usagelog.AddrStat, aggregate bool, allowed, trusted, nonPublic func(netip.Addr) bool) []suggestionJSON {
	type class struct{ trusted, nonPublic bool }
	byClass := map[class][]netip.Prefix{}
	classOf := make([]class, len(addrs))
	for i, a := range addrs {
		ip := a.Addr.Unmap()
		c := class{trusted(ip), nonPublic(ip)}
		classOf[i] = c
		p := netip.PrefixFrom(ip, ip.BitLen())
		if aggregate {
			bits := 24
			if ip.Is6() {
				bits = 48
			}
			p, _ = ip.Prefix(bits)
		}
		byClass[c] = append(byClass[c], p)
	}
	type group struct {
		s     suggestionJSON
		found bool
	}
	groups := map[class]map[netip.Prefix]*group{}
	for c, ps := range byClass {
		m := map[netip.Prefix]*group{}
		for _, p := range engine.CoverPrefixes(ps) {
			g := &group{s: suggestionJSON{CIDR: p.String(), Allowed: true, Flags: []string{}}}
			if c.trusted {
				g.s.Flags = append(g.s.Flags, "trusted_proxy")
			}
			if c.nonPublic {
				g.s.Flags = append(g.s.Flags, "non_public")
			}
			m[p] = g
		}
		groups[c] = m
	}
	var out []*group
	for i, a := range addrs {
		ip := a.Addr.Unmap()
		m := groups[classOf[i]]
		var g *group
		for bits := ip.BitLen(); bits >= 0 && g == nil; bits-- {
			p, _ := ip.Prefix(bits)
			g = m[p]
		}
		if g == nil {
			continue // cannot happen: the cover holds every address
		}
		if !g.found {
			g.found = true
			g.s.FirstSeen, g.s.LastSeen = a.FirstSeen, a.LastSeen
			out = append(out, g)
		}
		g.s.Requests += a.Requests
		g.s.Addresses++
		g.s.Allowed = g.s.Allowed && allowed(ip)
		if a.FirstSeen.Before(g.s.FirstSeen) {
			g.s.FirstSeen = a.FirstSeen
		}
		if a.LastSeen.After(g.s.LastSeen) {
			g.s.LastSeen = a.LastSeen
		}
	}
	slices.SortFunc(out, func(x, y *group) int {
		return cmp.Or(cmp.Compare(y.s.Requests, x.s.Requests), strings.Compare(x.s.CIDR, y.s.CIDR))
	})
	res := make([]suggestionJSON, len(out))
	for i, g := range out {
		res[i] = g.s
	}
	return res
}
