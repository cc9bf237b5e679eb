package server

import (
	"net"
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// maxAddrText bounds the text of one address: the longest IPv6 form
// ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") is 45 bytes.
const maxAddrText = 64

// parseAddr parses one plain IPv4 or IPv6 address, surrounded by optional
// spaces or tabs, without allocating. Anything else — ports, brackets,
// zones, leading zeros, integer forms — is refused: a caller treats it as
// "no valid address", which never matches an allowlist.
func parseAddr(b []byte) (netip.Addr, bool) {
	b = trimOWS(b)
	if a, ok := parseIPv4(b); ok {
		return a, true
	}
	return parseAddrSlow(b)
}

// parsePlainAddr is parseAddr without the optional spaces and tabs: an
// address with any around it is refused.
func parsePlainAddr(b []byte) (netip.Addr, bool) {
	if a, ok := parseIPv4(b); ok {
		return a, true
	}
	if len(trimOWS(b)) != len(b) {
		return netip.Addr{}, false
	}
	return parseAddrSlow(b)
}

// parseIPv4 parses b if it is an IPv4 address in the one form
// netip.ParseAddr accepts: four decimal fields of at most 255, separated
// by dots, without leading zeros. For anything else, valid or not, it
// returns false, and parseAddrSlow decides. It is the common case, in one
// pass and without netip's error values.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var f [4]byte
	i := 0
	for n := range f {
		if n > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		if i >= len(b) || b[i]-'0' > 9 {
			return netip.Addr{}, false
		}
		v := uint(b[i] - '0')
		i++
		// A field is "0" or starts with 1-9 and has up to three digits
		// ("01" ends at the 0, and the '.' expected next is missing).
		for k := 0; v != 0 && k < 2 && i < len(b) && b[i]-'0' <= 9; k++ {
			v = v*10 + uint(b[i]-'0')
			i++
		}
		if v > 255 {
			return netip.Addr{}, false
		}
		f[n] = byte(v)
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(f), true
}

// parseAddrSlow is parseAddr for b already trimmed, through netip.
func parseAddrSlow(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > maxAddrText {
		return netip.Addr{}, false
	}
	for _, c := range b {
		// A zone would make ParseAddr keep a reference to the text, and
		// is never a real client address.
		if c == '%' {
			return netip.Addr{}, false
		}
	}
	// The string does not outlive this call: without a zone, ParseAddr
	// keeps nothing of its input.
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// proxySet is the set of trusted proxies: address prefixes, scanned
// linearly (deployments trust a handful of ranges), and unix, set when
// every peer of a Unix-domain socket listener is trusted.
type proxySet struct {
	prefixes []netip.Prefix
	unix     bool
}

func (p proxySet) contains(a netip.Addr) bool {
	for _, pfx := range p.prefixes {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// trusts reports whether peer is a trusted proxy.
func (p proxySet) trusts(peer peer) bool {
	if peer.unix {
		return p.unix
	}
	return p.contains(peer.addr)
}

// peer is the other end of a request's connection: a TCP address, or a
// Unix-domain socket peer, which has none (addr is the zero address).
type peer struct {
	addr netip.Addr
	unix bool
}

// peerOf returns the peer of ctx, IPv4-mapped addresses unmapped.
func peerOf(ctx *fasthttp.RequestCtx) peer {
	switch a := ctx.RemoteAddr().(type) {
	case *net.TCPAddr:
		// An accepted Unix connection may have no remote address,
		// which fasthttp reports as a zero *net.TCPAddr: the local
		// address tells.
		if _, ok := ctx.LocalAddr().(*net.UnixAddr); ok {
			return peer{unix: true}
		}
		return peer{addr: a.AddrPort().Addr().Unmap()}
	case *net.UnixAddr:
		return peer{unix: true}
	}
	return peer{}
}

// clientIP decides the client address of a forward-auth request.
//
// The TCP peer is the client unless it is a trusted proxy. A Unix-socket
// peer has no address: it is a trusted proxy when trusted names unix, and
// otherwise the client is the zero address, which never matches an
// allowlist. Then the
// X-Forwarded-For header lines are read as one list, in order, and walked
// from the right: each hop appended by a trusted proxy is skipped, and the
// first untrusted hop is the client. If every hop is trusted, the leftmost
// is the client. A hop that is not a valid address stops the walk and
// yields the invalid (zero) address: it is never skipped, because skipping
// it would let a client choose which address is checked.
//
// The first configured single-address header (such as X-Real-IP) that is
// present is the other source. Alone, it decides. When it and
// X-Forwarded-For are both present and name different clients, the result
// is the zero address: a proxy sets one of them, and the other came from
// the client (nginx, say, passes a client's X-Forwarded-For through while
// setting X-Real-IP), so believing either could let a client choose its
// address. The zero address never matches an allowlist, so a key with an
// allowlist fails closed. Two lines of the header with different values
// are the same conflict. A real-IP header naming a trusted proxy says
// nothing about the client (Traefik sets X-Real-Ip to its TCP peer, a
// load balancer, when it is absent) and is ignored.
func clientIP(f *fwdHeaders, from peer, trusted proxySet) netip.Addr {
	if !trusted.trusts(from) {
		return from.addr
	}
	peer := from.addr
	var real netip.Addr
	hasReal := false
	for i := range f.names {
		v, conflict := f.realIP(i)
		if v == nil {
			continue
		}
		if conflict {
			return netip.Addr{}
		}
		var ok bool
		real, ok = parseAddr(v)
		hasReal = !ok || !trusted.contains(real)
		break
	}
	lines := f.xffLines()
	switch {
	case len(lines) == 0 && hasReal:
		return real
	case len(lines) == 0:
		return peer
	}
	a := walkXFF(lines, trusted)
	if hasReal && a != real {
		return netip.Addr{}
	}
	return a
}

// walkXFF walks X-Forwarded-For header lines right to left as described at
// clientIP. It does not allocate.
func walkXFF(lines [][]byte, trusted proxySet) netip.Addr {
	var last netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		end := len(line)
		for end >= 0 {
			start := end - 1
			for start >= 0 && line[start] != ',' {
				start--
			}
			a, ok := parseAddr(line[start+1 : end])
			if !ok {
				return netip.Addr{}
			}
			if !trusted.contains(a) {
				return a
			}
			last = a
			end = start
		}
	}
	return last
}
