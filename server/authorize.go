package server

import (
	"net/netip"
	"time"

	"github.com/keygate/keygate/engine"
)

// This file is the decision step every forward-auth transport shares:
// /v1/authz over HTTP and Envoy's gRPC ext_authz (package
// server/extauthz). Each transport reads the key, the method, the path
// and the client address its own way and hands them here; the route
// scope, the engine's check, the metrics and the usage-log record are
// decided in one place.

// ForwardedCheck is one forward-auth check that a transport other than
// the HTTP listener received. Its byte slices are read during Authorize
// only and never retained.
type ForwardedCheck struct {
	// Start is when the request arrived: the time the key's validity is
	// judged at and the usage-log record's time. Zero means now (the
	// server's Config.Now).
	Start time.Time
	// Key is the presented API key (see PresentedKey); nil for none.
	Key []byte
	// Method is the client request's method.
	Method []byte
	// Target is the client request's target as sent, in origin form
	// ("/orders/7?x=1") or absolute form ("https://api.example/orders/7"),
	// the query ignored, read as /v1/authz reads X-Forwarded-Uri:
	// anything else, or (with route rules) a path whose meaning depends
	// on the upstream, requires a scope no key holds.
	Target []byte
	// IP is the client's address. The zero Addr matches no allowlist.
	IP netip.Addr
}

// Authorize decides c exactly as /v1/authz decides a request with a
// forwarded URI: the same route scope, decision order, metrics and usage
// log (status 200, 401 or 403, as DecisionStatus). It does not allocate
// and is safe for concurrent use.
func (s *Server) Authorize(c *ForwardedCheck) engine.Result {
	start := c.Start
	if start.IsZero() {
		start = s.cfg.Now()
	}
	routes := s.live.Load().routes // one set of rules for the whole decision
	path, ok := targetPath(c.Target, routes)
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	return s.authorize(sc, start, c.Key, c.Method, path, ok, c.IP, routes)
}

// targetPath returns the path of a forwarded request target, without
// its query, and whether the route rules can be said to cover it (see
// forwardedPath and ambiguousPath).
func targetPath(target []byte, routes routeTable) (path []byte, ok bool) {
	path, ok = forwardedPath(target)
	if !ok {
		path = stripQuery(target)
	}
	return path, ok && !(len(routes) > 0 && ambiguousPath(path))
}

// authorize decides one forward-auth request under routes (the live
// rules the caller read the path with) and records it. ok false (the
// method or URI arrived twice with different values, or the path cannot
// be read as the upstream reads it) requires unsatisfiableScope. sc is the
// caller's scratch: its uri and log are used here, its buf is left alone.
func (s *Server) authorize(sc *scratch, start time.Time, key, method, path []byte, ok bool, ip netip.Addr, routes routeTable) engine.Result {
	var scope []byte
	switch {
	case !ok:
		scope = unsatisfiableScope
	case len(routes) > 0: // normalising the path is work only rules need
		sc.uri.SetPathBytes(path)
		scope = routes.scopeFor(method, sc.uri.Path())
	}
	res := s.keys.Check(key, scope, ip, start)
	s.record(sc, start, &res, outcome(res.Decision), ip, method, path, DecisionStatus(res.Decision))
	return res
}

// DecisionStatus is the HTTP status that answers decision d: 200 for
// the decisions that let a request through (Allowed), 401 for an invalid
// key, 403 for the other denials; 0 for a value that is no decision.
func DecisionStatus(d engine.Decision) int {
	if int(d) >= len(decisionStatus) {
		return 0
	}
	return decisionStatus[d]
}

// DenialBody is the JSON error body of denial d, byte for byte what
// /v1/authz and /v1/check send ({"error":{"code":...,"message":...}});
// nil for Allow and for a value that is no decision. The slice is
// shared: callers must not modify it.
func DenialBody(d engine.Decision) []byte {
	if int(d) >= len(decisionBody) {
		return nil
	}
	return decisionBody[d]
}

// WWWAuthenticate is the challenge sent with a 401 denial.
const WWWAuthenticate = `Bearer realm="keygate", error="invalid_token"`

// AppendKeyName appends k's name as the X-Keygate-Key-Name header value
// (control characters replaced by spaces, so it cannot split a header).
func AppendKeyName(b []byte, k *engine.KeyInfo) []byte { return appendHeaderValue(b, k.Name()) }

// AppendScopes appends k's scopes, comma-separated, as the
// X-Keygate-Scopes header value.
func AppendScopes(b []byte, k *engine.KeyInfo) []byte {
	first := true
	for sco := range k.Scopes() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendHeaderValue(b, sco)
	}
	return b
}
