package server

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/engine"
)

// Config is the daemon's configuration. The zero value of every field is a
// sensible default, except AdminToken, which is required.
type Config struct {
	// Addr is where the check path listens: host:port, or unix:PATH for
	// a Unix-domain socket; default DefaultAddr. When AdminAddr is empty
	// the management API and the UI are served here too.
	Addr string `json:"addr"`
	// AdminAddr, when set, is a separate listener for the management API
	// and the UI, so that Addr can face proxies while management stays on
	// loopback.
	AdminAddr string `json:"admin_addr"`
	// SocketMode is the file mode of the socket of a unix: listener
	// (permission bits only); zero means DefaultSocketMode (0660).
	SocketMode fs.FileMode `json:"-"`
	// AdminToken is the bearer token of the management API. It must be at
	// least 16 characters and must not have the form of an API key.
	AdminToken string `json:"admin_token"`
	// TrustedProxies lists the addresses and CIDR ranges of the proxies
	// whose forwarded headers are believed. Empty: none; the TCP peer is
	// always the client. "unix" trusts every peer of a unix: listener,
	// which has no address: without it, a forward-auth request over a
	// socket has no client address and fails closed for a key with an
	// allowlist.
	TrustedProxies []string `json:"trusted_proxies"`
	// TrustAllProxies confirms a TrustedProxies range of every address
	// (0.0.0.0/0 or ::/0), refused without it: every client can then set
	// its own address with X-Forwarded-For.
	TrustAllProxies bool `json:"trust_all_proxies"`
	// RealIPHeaders are single-address headers read from a trusted proxy,
	// the first present one counting. Alone, it names the client; beside
	// an X-Forwarded-For that names a different client, there is no client
	// address (fail closed). Nil means ["X-Real-IP"]; an empty non-nil list
	// disables them.
	RealIPHeaders []string `json:"real_ip_headers"`
	// AllowPrivateRanges accepts private, loopback, link-local and other
	// non-public ranges in allowlists.
	AllowPrivateRanges bool `json:"allow_private_ranges"`
	// Routes map a request's method and path prefix to the scope a
	// forward-auth check requires. The longest matching prefix wins; at
	// equal length a rule naming the method beats one for any method.
	Routes []Route `json:"routes"`

	// ReadTimeout, WriteTimeout and IdleTimeout bound each connection;
	// defaults 10s, 10s and 60s.
	ReadTimeout  time.Duration `json:"-"`
	WriteTimeout time.Duration `json:"-"`
	IdleTimeout  time.Duration `json:"-"`
	// MaxHeaderBytes bounds a request's header; larger is answered with
	// 431. Default 8 KiB.
	MaxHeaderBytes int `json:"-"`
	// MaxBodyBytes bounds a request's body; larger is answered with 413.
	// Default 64 KiB.
	MaxBodyBytes int `json:"-"`
	// MaxConns bounds the open connections of each listener; a connection
	// beyond it is answered with 503 UNAVAILABLE and closed. Default
	// DefaultMaxConns.
	MaxConns int `json:"max_conns"`
	// PollInterval is how often the store is asked for changes made by
	// other daemons; default 1s.
	PollInterval time.Duration `json:"-"`
	// ShutdownTimeout bounds how long in-flight requests are waited for;
	// default 10s.
	ShutdownTimeout time.Duration `json:"-"`
	// ShutdownDelay is how long the daemon keeps serving after it is told
	// to stop, with /readyz answering 503 "shutting down", before it stops
	// accepting: time for a load balancer or Kubernetes to take it out of
	// rotation, so that no client meets a refused connection. Zero (the
	// default) stops accepting at once, as Traefik's
	// requestAcceptGraceTimeout does.
	ShutdownDelay time.Duration `json:"-"`
	// Now is the clock the decision, the usage log and the management
	// views read; nil means time.Now. Tests set it to move time without
	// waiting.
	Now func() time.Time `json:"-"`
	// Version is reported by /metrics and /healthz.
	Version string `json:"-"`
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger `json:"-"`
}

// Route maps requests to a required scope.
type Route struct {
	// Method is one HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE,
	// OPTIONS, CONNECT, TRACE; any case), or "" or "*" for any. A list
	// ("GET,POST") is refused: write one rule per method.
	Method string `json:"method"`
	// Prefix is matched against the request path (decoded, without the
	// query) byte for byte: "/admin" also covers "/administrators". It
	// must start with "/" and be a normalised path, or it could never
	// match: no query or fragment, no %-escape (write the decoded
	// characters), no dot-segment or empty segment, nothing ambiguousPath
	// refuses. Two rules with the same method and prefix (compared
	// without case when either rule is case-insensitive) are refused. A
	// path whose meaning depends on the upstream
	// (see ambiguousPath) matches no rule: it needs a scope no key holds.
	Prefix string `json:"prefix"`
	// Scope is the scope the key must grant; "" requires none, which lets a
	// rule exempt a sub-path from a broader rule.
	Scope string `json:"scope"`
	// CaseInsensitive matches Prefix without regard to ASCII case, for
	// an upstream that routes so (Express does by default): "/admin"
	// then also covers "/ADMIN". Off by default: matching is byte for
	// byte.
	CaseInsensitive bool `json:"case_insensitive"`
}

// DefaultAddr is the check listener's default address.
const DefaultAddr = "127.0.0.1:8080"

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.SocketMode == 0 {
		c.SocketMode = DefaultSocketMode
	}
	if c.RealIPHeaders == nil {
		c.RealIPHeaders = []string{"X-Real-IP"}
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 8 << 10
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// MinAdminTokenLen is the shortest admin token accepted.
const MinAdminTokenLen = 16

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	for _, a := range []struct{ name, v string }{{"addr", c.Addr}, {"admin-addr", c.AdminAddr}} {
		if a.v == "" {
			continue
		}
		if err := validateListenAddr(a.name, a.v); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SocketMode&^fs.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("socket-mode %04o: want permission bits only, at most 0777 (e.g. 0660)", uint32(c.SocketMode)))
	}
	if c.AdminAddr != "" && c.AdminAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		errs = append(errs, fmt.Errorf("admin-addr %q is the same as addr: leave it empty to serve management on addr", c.AdminAddr))
	}
	switch {
	case c.AdminToken == "":
		errs = append(errs, errors.New("admin-token is required"))
	case len(c.AdminToken) < MinAdminTokenLen:
		errs = append(errs, fmt.Errorf("admin-token must be at least %d characters", MinAdminTokenLen))
	case engine.ValidSecretFormat([]byte(c.AdminToken)):
		errs = append(errs, errors.New("admin-token has the form of an API key: an API key is never an admin token; use a different token"))
	case strings.ContainsAny(c.AdminToken, " \t\r\n"):
		errs = append(errs, errors.New("admin-token must not contain whitespace"))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("max-conns %d must not be negative", c.MaxConns))
	}
	if _, err := parseProxies(c.TrustedProxies, c.TrustAllProxies); err != nil {
		errs = append(errs, err)
	}
	for _, h := range c.RealIPHeaders {
		if h == "" || strings.ContainsAny(h, " :\t\r\n") {
			errs = append(errs, fmt.Errorf("real-ip header %q is not a header name", h))
		}
	}
	if _, err := compileRoutes(c.Routes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseProxies parses trusted proxy addresses and ranges, and "unix" (the
// peers of a Unix-domain socket listener).
// A range of every address (0.0.0.0/0, ::/0) is refused unless trustAll.
func parseProxies(list []string, trustAll bool) (proxySet, error) {
	var out proxySet
	var errs []error
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "unix" {
			out.unix = true
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("trusted-proxies: %q is not a CIDR range", s))
				continue
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
			}
			if m := p.Masked(); m.Addr() != p.Addr() {
				errs = append(errs, fmt.Errorf("trusted-proxies: %q has bits set beyond the /%d prefix: did you mean %s (the whole range) or %s (the single address)?", s, p.Bits(), m, p.Addr()))
				continue
			}
			if p.Bits() == 0 && !trustAll {
				errs = append(errs, fmt.Errorf("trusted-proxies: %q is every address: any client could then forge X-Forwarded-For and pass an allowlist; name the proxies' addresses, or confirm with --trust-all-proxies (trust_all_proxies in the config file)", s))
				continue
			}
			out.prefixes = append(out.prefixes, p)
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("trusted-proxies: %q is not an IP address, a CIDR range or \"unix\" (the peers of a unix: listener)", s))
			continue
		}
		a = a.Unmap()
		out.prefixes = append(out.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}

// route is a compiled Route.
type route struct {
	method []byte // nil: any
	prefix []byte
	scope  []byte
	fold   bool // match prefix without ASCII case
}

type routeTable []route

// httpMethods are the methods a route rule may name (RFC 9110 and PATCH).
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// routeProblem says what is wrong with one rule, and what to write
// instead, or returns "". A rule that could never match would fail open:
// the requests it was meant to guard would need no scope.
func routeProblem(r Route) string {
	m := r.Method
	switch {
	case strings.ContainsAny(m, ", "):
		return fmt.Sprintf("method %q names more than one method: write one rule per method (or \"*\" for any)", m)
	case m != "" && m != "*" && !slices.Contains(httpMethods, strings.ToUpper(m)):
		return fmt.Sprintf("method %q is not an HTTP method: write one of %s, or \"*\" (or leave it out) for any", m, strings.Join(httpMethods, ", "))
	}
	p := r.Prefix
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("prefix %q must start with /", p)
	case strings.ContainsAny(p, "?#"):
		return fmt.Sprintf("prefix %q holds a query or fragment (? or #): it is matched against the path alone; write the path, e.g. %q", p, p[:strings.IndexAny(p, "?#")])
	case strings.Contains(p, "%"):
		return fmt.Sprintf("prefix %q holds a %%-escape: it is matched against the decoded path; write the decoded characters (e.g. /api, not /%%61pi)", p)
	case ambiguousPath([]byte(p)):
		return fmt.Sprintf("prefix %q holds a dot-segment (/./, /../), an empty segment (//), a backslash, a ; or a control byte: a path with one is never matched to a rule; write the normalised path", p)
	}
	if pr := engine.ScopeProblem(r.Scope); r.Scope != "" && pr != "" {
		return "scope " + pr
	}
	return ""
}

// routeKey identifies a rule for the duplicate check: its method ("*" for
// any) and its prefix, case-folded when either rule ignores case.
func routeKey(r Route) (method, prefix string) {
	method = strings.ToUpper(strings.TrimSpace(r.Method))
	if method == "" {
		method = "*"
	}
	return method, r.Prefix
}

func describeRoute(i int, r Route) string {
	return fmt.Sprintf("routes[%d] {method %q, prefix %q, scope %q}", i, r.Method, r.Prefix, r.Scope)
}

func compileRoutes(rs []Route) (routeTable, error) {
	var out routeTable
	var errs []error
	for i, r := range rs {
		if p := routeProblem(r); p != "" {
			errs = append(errs, fmt.Errorf("%s: %s", describeRoute(i, r), p))
			continue
		}
		m, pfx := routeKey(r)
		for j, q := range rs[:i] {
			qm, qp := routeKey(q)
			same := pfx == qp || (r.CaseInsensitive || q.CaseInsensitive) && strings.EqualFold(pfx, qp)
			if m == qm && same {
				errs = append(errs, fmt.Errorf("%s: the same method and prefix as routes[%d]: only one could ever apply; keep one rule per method and prefix", describeRoute(i, r), j))
				break
			}
		}
		rt := route{prefix: []byte(r.Prefix), scope: []byte(r.Scope), fold: r.CaseInsensitive}
		if m != "*" {
			rt.method = []byte(m)
		}
		out = append(out, rt)
	}
	// Longest prefix first; at equal length, method-specific first.
	slices.SortStableFunc(out, func(a, b route) int {
		if len(a.prefix) != len(b.prefix) {
			return len(b.prefix) - len(a.prefix)
		}
		return boolInt(a.method == nil) - boolInt(b.method == nil)
	})
	return out, errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scopeFor returns the scope required for method and path (nil: none). It
// does not allocate.
func (t routeTable) scopeFor(method, path []byte) []byte {
	for i := range t {
		r := &t[i]
		if r.method != nil && !bytes.EqualFold(r.method, method) {
			continue
		}
		if bytes.HasPrefix(path, r.prefix) || r.fold && hasPrefixFold(path, r.prefix) {
			return r.scope
		}
	}
	return nil
}

// hasPrefixFold reports whether p begins with prefix, ASCII letters
// compared without case.
func hasPrefixFold(p, prefix []byte) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i, c := range prefix {
		if lowerASCII(p[i]) != lowerASCII(c) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// tokenEqual compares a presented token with the admin token's digest in
// constant time.
func tokenEqual(presented []byte, want *[32]byte) bool {
	got := hashToken(presented)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
