package server

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// This file decides which path a forward-auth request's route rules see,
// and when no path can be trusted to mean one thing.

// isAuthzRequest reports whether a request on the check listener is a
// forward-auth request. A raw path that starts with /v1/authz is one
// whatever follows: Envoy appends the client's path to its path_prefix
// as it came, and resolving "/v1/authz/../../healthz" or
// "/v1/authz/..%2Fmetrics" first would let a client reach another
// endpoint through the proxy. A raw path that only normalises to
// /v1/authz ("/v1/x/../authz/y") is one too.
func isAuthzRequest(raw, norm []byte) bool {
	return bytes.HasPrefix(raw, []byte(authzPrefix)) || hasPathPrefix(norm, authzPrefix)
}

// authzPath returns the path below /v1/authz that the route rules match
// when no forwarded URI header arrived (Envoy's path_prefix), taken from
// the normalised path norm. ok is false when the normalised path is no
// longer below /v1/authz (dot-segments or encoded slashes climbed out of
// it): then there is no path to decide on.
func authzPath(norm []byte) (path []byte, ok bool) {
	if !hasPathPrefix(norm, authzPrefix) {
		return nil, false
	}
	if path = norm[len(authzPrefix):]; len(path) == 0 {
		path = slash
	}
	return path, true
}

// forwardedPath returns the path of a forwarded URI (X-Forwarded-Uri,
// X-Original-URI) without its query: an origin-form URI ("/a?b") as it
// is, an absolute-form one ("http://host/a?b", what HTTP/2 and absolute
// requests give some proxies) without its scheme and authority. ok is
// false for anything else ("*", "a/b", "http:/x"): no route rule can be
// said to cover it.
func forwardedPath(uri []byte) (path []byte, ok bool) {
	uri = stripQuery(uri)
	if len(uri) > 0 && uri[0] == '/' {
		return uri, true
	}
	// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://".
	i := 0
	for i < len(uri) && (isAlpha(uri[i]) || i > 0 && (isDigit(uri[i]) || uri[i] == '+' || uri[i] == '-' || uri[i] == '.')) {
		i++
	}
	if i == 0 || !bytes.HasPrefix(uri[i:], []byte("://")) {
		return nil, false
	}
	rest := uri[i+3:]
	end := bytes.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	if bytes.ContainsAny(rest[:end], `\%`) {
		// "http://host\@evil/x", "http://host%2fadmin": where the
		// authority ends depends on the parser.
		return nil, false
	}
	if end == len(rest) {
		return slash, true
	}
	return rest[end:], true
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ambiguousPath reports whether a raw (undecoded) path means different
// things to different upstreams, so that keygate's reading of it, decoded
// and normalised, cannot be trusted to be the upstream's:
//
//   - a backslash, raw or encoded (%5c): some servers read it as "/";
//   - a ";" or an encoded one (%3b): a path parameter ("/..;/") that Java
//     servers strip and others keep;
//   - an encoded "%" (%25): decoded twice ("%252e%252e") by some;
//   - an encoded "/" (%2f): a separator to some, a byte of a segment to
//     others;
//   - a dot-segment ("." or "..", raw or encoded) or an empty segment
//     ("//"): resolved or merged by some, routed as they are by others;
//   - a NUL or other control byte, raw or encoded.
//
// It does not allocate.
func ambiguousPath(p []byte) bool {
	segStart := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f || c == '\\' || c == ';':
			return true
		case c == '%':
			if i+2 >= len(p) {
				return true // a dangling escape
			}
			d, ok := unhex2(p[i+1], p[i+2])
			if !ok {
				return true
			}
			if d < 0x20 || d == 0x7f || d == '\\' || d == ';' || d == '%' || d == '/' || d == '.' {
				return true
			}
		case c == '/':
			if i > 0 && isDotSegment(p[segStart:i]) {
				return true
			}
			if i > 0 && i == segStart {
				return true // "//"
			}
			segStart = i + 1
		}
	}
	return isDotSegment(p[segStart:])
}

// isDotSegment reports whether a raw segment is "." or "..".
func isDotSegment(s []byte) bool {
	return string(s) == "." || string(s) == ".."
}

func unhex2(a, b byte) (byte, bool) {
	x, ok1 := unhex1(a)
	y, ok2 := unhex1(b)
	return x<<4 | y, ok1 && ok2
}

func unhex1(c byte) (byte, bool) {
	switch {
	case isDigit(c):
		return c - '0', true
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return c | 0x20 - 'a' + 10, true
	}
	return 0, false
}

// peekUnique returns the value of header name and whether it arrived on
// more than one line with different values: a proxy that appends rather
// than replaces leaves the client's copy beside its own, and either could
// be read first. It does not allocate.
func peekUnique(h *fasthttp.RequestHeader, name string) (v []byte, conflict bool) {
	vs := h.PeekAll(name)
	if len(vs) == 0 {
		return nil, false
	}
	v = vs[0]
	for _, w := range vs[1:] {
		if !bytes.Equal(trimOWS(w), trimOWS(v)) {
			return v, true
		}
	}
	return v, false
}

// PresentedKey is the presented key (pickKey) for a transport that hands over each
// header as one value, its repeated lines joined with "," as Envoy's
// CheckRequest does: authorization and apiKey are the Authorization and
// X-API-Key values (nil when absent). Lines that differ are no key (nil),
// as are a bearer token and an X-API-Key that differ. The result aliases
// the arguments. It does not allocate.
func PresentedKey(authorization, apiKey []byte) []byte {
	auth, c1 := JoinedValue(authorization)
	key, c2 := JoinedValue(apiKey)
	return pickKey(auth, key, c1 || c2)
}

// JoinedValue returns the first of the comma-joined lines of one header
// value and whether any other line differs from it (spaces and tabs
// around each ignored). A value without a comma is one line. It does not
// allocate.
func JoinedValue(v []byte) (first []byte, conflict bool) {
	i := bytes.IndexByte(v, ',')
	if i < 0 {
		return v, false
	}
	first = trimOWS(v[:i])
	for rest := v[i+1:]; ; {
		part := rest
		j := bytes.IndexByte(rest, ',')
		if j >= 0 {
			part = rest[:j]
		}
		if !bytes.Equal(trimOWS(part), first) {
			return first, true
		}
		if j < 0 {
			return first, false
		}
		rest = rest[j+1:]
	}
}

// pickKey returns the API key of a forward-auth request: the bearer
// token of Authorization (auth), else X-API-Key. A header on lines that
// differ (conflict), or a bearer token and an X-API-Key that differ, is
// no key at all (401): which one a proxy or the upstream reads is not
// keygate's to guess.
func pickKey(auth, apiKey []byte, conflict bool) []byte {
	if conflict {
		return nil
	}
	bearer := bearerToken(auth)
	apiKey = trimOWS(apiKey)
	switch {
	case bearer == nil:
		return apiKey
	case len(apiKey) > 0 && !bytes.Equal(bearer, apiKey):
		return nil
	}
	return bearer
}
