package server

import (
	"fmt"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
)

// liveSettings are the settings Reload can change while the server runs.
// The check path loads them once per request.
type liveSettings struct {
	cfg     Config // the fields below, as configured
	trusted proxySet
	routes  routeTable
	realIP  []string
	// realIPNorm is realIP in fasthttp's normal form of a header name
	// ("X-Real-IP" is stored as "X-Real-Ip"), as the header pass meets
	// them (fwdHeaders.read).
	realIPNorm []string
	// realIPPass: the pass can gather them (passable).
	realIPPass bool
}

// compileLive compiles cfg's reloadable settings; cfg is valid.
func compileLive(cfg Config) *liveSettings {
	trusted, _ := parseProxies(cfg.TrustedProxies, cfg.TrustAllProxies)
	routes, _ := compileRoutes(cfg.Routes)
	norm := make([]string, len(cfg.RealIPHeaders))
	for i, name := range cfg.RealIPHeaders {
		norm[i] = string(fasthttp.AppendNormalizedHeaderKey(nil, name))
	}
	return &liveSettings{cfg: cfg, trusted: trusted, routes: routes, realIP: cfg.RealIPHeaders, realIPNorm: norm, realIPPass: passable(norm)}
}

// Reloadable names the settings Reload applies: the trusted proxies (and
// trust_all_proxies), the real-IP headers and the route rules. Every
// other field of Config takes a restart.
const Reloadable = "trusted_proxies, trust_all_proxies, real_ip_headers, routes"

// Reload validates cfg and, if it is valid, applies its reloadable
// settings (see Reloadable) to the requests that start afterwards. It
// returns what changed, one "name: old -> new" line per setting. On an
// error nothing changes. The other fields of cfg are ignored: the caller
// says which of them would take a restart.
func (s *Server) Reload(cfg Config) (changed []string, err error) {
	cur := s.live.Load().cfg
	cfg.AdminToken = cur.AdminToken // not reloaded; keep Validate's check quiet
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	next := cur
	next.TrustedProxies, next.TrustAllProxies = cfg.TrustedProxies, cfg.TrustAllProxies
	next.RealIPHeaders, next.Routes = cfg.RealIPHeaders, cfg.Routes
	if !slices.Equal(cur.TrustedProxies, next.TrustedProxies) || cur.TrustAllProxies != next.TrustAllProxies {
		changed = append(changed, fmt.Sprintf("trusted_proxies: [%s] -> [%s]", strings.Join(cur.TrustedProxies, ","), strings.Join(next.TrustedProxies, ",")))
	}
	if !slices.Equal(cur.RealIPHeaders, next.RealIPHeaders) {
		changed = append(changed, fmt.Sprintf("real_ip_headers: [%s] -> [%s]", strings.Join(cur.RealIPHeaders, ","), strings.Join(next.RealIPHeaders, ",")))
	}
	if !slices.Equal(cur.Routes, next.Routes) {
		changed = append(changed, fmt.Sprintf("routes: %d rules -> %d rules", len(cur.Routes), len(next.Routes)))
	}
	s.live.Store(compileLive(next))
	return changed, nil
}
