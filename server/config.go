package server

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/engine"
)

// Config is the daemon's configuration. The zero value of every field is a
// sensible default, except AdminToken, which is required.
type Config struct {
	// Addr is where the check path listens; default DefaultAddr. When
	// AdminAddr is empty the management API and the UI are served here too.
	Addr string `json:"addr"`
	// AdminAddr, when set, is a separate listener for the management API
	// and the UI, so that Addr can face proxies while management stays on
	// loopback.
	AdminAddr string `json:"admin_addr"`
	// AdminToken is the bearer token of the management API. It must be at
	// least 16 characters and must not have the form of an API key.
	AdminToken string `json:"admin_token"`
	// TrustedProxies lists the addresses and CIDR ranges of the proxies
	// whose forwarded headers are believed. Empty: none; the TCP peer is
	// always the client.
	TrustedProxies []string `json:"trusted_proxies"`
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
	// Method is an HTTP method, or "" or "*" for any.
	Method string `json:"method"`
	// Prefix is matched against the request path (decoded, without the
	// query) byte for byte: "/admin" also covers "/administrators". It
	// must start with "/". A path whose meaning depends on the upstream
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
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port, e.g. 127.0.0.1:8080", a.name, a.v))
		}
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
	if _, err := parseProxies(c.TrustedProxies); err != nil {
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

// parseProxies parses trusted proxy addresses and ranges.
func parseProxies(list []string) (proxySet, error) {
	var out proxySet
	var errs []error
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
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
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("trusted-proxies: %q is not an IP address or CIDR range", s))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
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

func compileRoutes(rs []Route) (routeTable, error) {
	var out routeTable
	var errs []error
	for i, r := range rs {
		if !strings.HasPrefix(r.Prefix, "/") {
			errs = append(errs, fmt.Errorf("routes[%d]: prefix %q must start with /", i, r.Prefix))
			continue
		}
		if p := engine.ScopeProblem(r.Scope); r.Scope != "" && p != "" {
			errs = append(errs, fmt.Errorf("routes[%d]: scope %s", i, p))
			continue
		}
		rt := route{prefix: []byte(r.Prefix), scope: []byte(r.Scope), fold: r.CaseInsensitive}
		if m := strings.TrimSpace(r.Method); m != "" && m != "*" {
			if strings.ContainsAny(m, " \t/") {
				errs = append(errs, fmt.Errorf("routes[%d]: method %q is not an HTTP method", i, r.Method))
				continue
			}
			rt.method = []byte(strings.ToUpper(m))
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
