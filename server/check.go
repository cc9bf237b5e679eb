package server

import (
	"bytes"
	"net/netip"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/usagelog"
)

// Response headers of the forward-auth endpoint. The identity headers are
// always set (empty when the check is denied), so a proxy that copies them
// upstream overwrites whatever a client sent under the same names.
const (
	HeaderKeyID        = "X-Keygate-Key-Id"
	HeaderKeyName      = "X-Keygate-Key-Name"
	HeaderScopes       = "X-Keygate-Scopes"
	HeaderErrorCode    = "X-Keygate-Error-Code"
	HeaderErrorMessage = "X-Keygate-Error-Message"
)

const authzPrefix = "/v1/authz"

// The check path's response header names as fasthttp sends them —
// normalised as ResponseHeader.Set would ("WWW-Authenticate" goes out as
// "Www-Authenticate") — and its fixed values, built once: the handlers set
// them with SetCanonical, which takes the name as it is instead of copying
// and normalising it on every answer. (keygate's listeners never disable
// header name normalisation.)
var (
	hdrCacheControl    = canonicalName(fasthttp.HeaderCacheControl)
	hdrKeyID           = canonicalName(HeaderKeyID)
	hdrKeyName         = canonicalName(HeaderKeyName)
	hdrScopes          = canonicalName(HeaderScopes)
	hdrErrorCode       = canonicalName(HeaderErrorCode)
	hdrErrorMessage    = canonicalName(HeaderErrorMessage)
	hdrWWWAuthenticate = canonicalName(fasthttp.HeaderWWWAuthenticate)

	valNoStore         = []byte("no-store")
	valWWWAuthenticate = []byte(WWWAuthenticate)
	valBadRequest      = []byte("BAD_REQUEST")
)

func canonicalName(name string) []byte { return fasthttp.AppendNormalizedHeaderKey(nil, name) }

// bytesOf returns the bytes of s without copying them, for fasthttp
// setters that copy what they are given. They must not be modified.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// scratch is per-request working memory of the check path, pooled so that
// a check does not allocate in steady state.
type scratch struct {
	log usagelog.Entry
	uri fasthttp.URI
	buf []byte
	req checkRequest
}

var scratchPool = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 512)} }}

// handleAuthz serves forward-auth requests (/v1/authz and below, any
// method). The query string and the body are ignored.
func (s *Server) handleAuthz(ctx *fasthttp.RequestCtx) {
	start := s.cfg.Now()
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	h := &ctx.Request.Header
	live := s.live.Load()
	routes := live.routes

	secret, method, methodConflict, uri, uriConflict, ip := readForwardAuth(h, peerOf(ctx), live)
	if len(method) == 0 {
		method = h.Method()
	}
	var path []byte
	ok := true
	if len(uri) == 0 {
		// Envoy's ext_authz appends the original path to the configured
		// path prefix; without a forwarded URI, the path below /v1/authz
		// is it, read after normalisation.
		raw := ctx.Request.URI().PathOriginal()
		path, ok = authzPath(ctx.Path())
		if ok && len(raw) > len(authzPrefix) && bytes.HasPrefix(raw, []byte(authzPrefix)) {
			raw = raw[len(authzPrefix):]
		}
		ok = ok && !(len(routes) > 0 && ambiguousPath(raw))
		if path == nil {
			path = stripQuery(raw)
		}
	} else {
		path, ok = targetPath(uri, routes)
	}
	res := s.authorize(sc, start, secret, method, path, ok && !methodConflict && !uriConflict, ip, routes)

	rh := &ctx.Response.Header
	rh.SetCanonical(hdrCacheControl, valNoStore)
	if res.Decision.Allowed() {
		k := res.Key
		rh.SetCanonical(hdrKeyID, bytesOf(k.ID()))
		sc.buf = AppendKeyName(sc.buf[:0], k)
		rh.SetCanonical(hdrKeyName, sc.buf)
		sc.buf = AppendScopes(sc.buf[:0], k)
		rh.SetCanonical(hdrScopes, sc.buf)
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.Response.ResetBody()
	} else {
		rh.SetCanonical(hdrKeyID, nil)
		rh.SetCanonical(hdrKeyName, nil)
		rh.SetCanonical(hdrScopes, nil)
		s.writeDenial(ctx, res.Decision)
	}
}

// handleCheck serves POST /v1/check.
func (s *Server) handleCheck(ctx *fasthttp.RequestCtx) {
	start := s.cfg.Now()
	if !ctx.IsPost() {
		writeError(ctx, errorf(errMethodNotAllowed, "use POST for /v1/check"))
		return
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	r := &sc.req
	ctx.Response.Header.SetCanonical(hdrCacheControl, valNoStore)
	if msg := parseCheckRequest(ctx.PostBody(), r); msg != "" {
		s.writeBadCheck(ctx, sc, start, r, msg)
		return
	}
	ip, ok := parsePlainAddr(r.ip)
	if !ok {
		s.writeBadCheck(ctx, sc, start, r, msgInvalidIP)
		return
	}
	res := s.keys.Check(r.key, r.scope, ip, start)
	if res.Decision.Allowed() {
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("application/json")
		b := append(sc.buf[:0], `{"allowed":true,"key_id":`...)
		b = appendJSONString(b, res.Key.ID())
		b = append(b, `,"key_name":`...)
		b = appendJSONString(b, res.Key.Name())
		b = append(b, `,"entry_id":`...)
		if res.EntryIndex() >= 0 {
			b = appendJSONString(b, res.EntryID())
		} else {
			b = append(b, "null"...)
		}
		b = append(b, '}')
		sc.buf = b
		ctx.SetBody(b)
	} else {
		s.writeDenial(ctx, res.Decision)
	}
	s.record(sc, start, &res, outcome(res.Decision), ip, r.method, stripQuery(r.path), ctx.Response.StatusCode())
}

// writeDenial answers a denied check: status, the precomputed JSON body,
// and the code and message as headers for proxies that drop the body.
// The body is never modified, so the response refers to it (SetBodyRaw)
// instead of copying it into a pooled buffer.
func (s *Server) writeDenial(ctx *fasthttp.RequestCtx, d engine.Decision) {
	rh := &ctx.Response.Header
	ctx.SetStatusCode(decisionStatus[d])
	ctx.SetContentType("application/json")
	rh.SetCanonical(hdrErrorCode, bytesOf(d.Code()))
	rh.SetCanonical(hdrErrorMessage, bytesOf(d.Message()))
	if d == engine.DenyInvalidKey {
		rh.SetCanonical(hdrWWWAuthenticate, valWWWAuthenticate)
	}
	ctx.Response.SetBodyRaw(decisionBody[d])
}

func (s *Server) writeBadCheck(ctx *fasthttp.RequestCtx, sc *scratch, start time.Time, r *checkRequest, msg string) {
	ctx.SetStatusCode(badCheckStatus)
	ctx.SetContentType("application/json")
	ctx.Response.Header.SetCanonical(hdrErrorCode, valBadRequest)
	ctx.Response.Header.SetCanonical(hdrErrorMessage, bytesOf(msg))
	b := append(sc.buf[:0], `{"error":{"code":"BAD_REQUEST","message":`...)
	b = appendJSONString(b, msg)
	b = append(b, "}}"...)
	sc.buf = b
	ctx.SetBody(b)
	ip, _ := parseAddr(r.ip)
	s.record(sc, start, &engine.Result{}, oBadRequest, ip, r.method, stripQuery(r.path), badCheckStatus)
}

// record counts the decision and hands it to the usage log. start, the
// one clock read taken before the decision, is also the record's time: a
// check reads the clock twice in all.
func (s *Server) record(sc *scratch, start time.Time, res *engine.Result, o outcome, ip netip.Addr, method, path []byte, status int) {
	lat := s.since(start)
	s.metrics.observeDecision(o, lat)
	code := res.Decision.Code()
	if o == oBadRequest {
		code = "BAD_REQUEST"
	}
	e := &sc.log
	*e = usagelog.Entry{Time: start, IP: ip, Method: method, Path: path, Status: status, Code: code, Latency: lat}
	if res.Key != nil {
		e.KeyID = res.Key.ID()
		e.Hint = res.SecretHint()
		e.EntryID = res.EntryID()
	}
	s.store.AppendLog(e)
	*e = usagelog.Entry{}
}

var slash = []byte("/")

// unsatisfiableScope is required of a forward-auth request whose original
// method or URI cannot be known: it arrives twice with different values
// (a proxy sets one spelling or line and passes the client's other one
// through, so either could be the client's choice), or the URI is not a
// path keygate reads as the upstream will (see forwardedPath and
// ambiguousPath). No key can hold it (scopes have no spaces), so a valid
// key gets 403 INSUFFICIENT_SCOPE and an invalid one still 401.
var unsatisfiableScope = []byte("conflicting forwarded method or URI")

// The request headers a forward-auth request is decided on, named as
// fasthttp stores them: header names are normalised when a request is
// read ("x-api-key" is stored as "X-Api-Key"), and these are in that form
// already (TestForwardAuthHeaderNames), so readForwardAuth can look them
// up without normalising each name again.
const (
	reqAuthorization   = fasthttp.HeaderAuthorization
	reqAPIKey          = "X-Api-Key"
	reqForwardedMethod = "X-Forwarded-Method"
	reqOriginalMethod  = "X-Original-Method"
	reqForwardedURI    = "X-Forwarded-Uri"
	reqOriginalURI     = "X-Original-Uri"
	reqXForwardedFor   = fasthttp.HeaderXForwardedFor
)

// readForwardAuth reads what a forward-auth request is decided on from its
// headers (fwdHeaders.read): the presented key (pickKey), the forwarded
// method and URI (forwardedHeader) and the client address (clientIP).
func readForwardAuth(h *fasthttp.RequestHeader, from peer, live *liveSettings) (key, method []byte, methodConflict bool, uri []byte, uriConflict bool, ip netip.Addr) {
	var f fwdHeaders
	f.read(h, live)
	key = pickKey(f.auth.v, f.apiKey.v, f.auth.conflict || f.apiKey.conflict)
	method, methodConflict = forwardedHeader(f.fwdMethod, f.origMethod)
	uri, uriConflict = forwardedHeader(f.fwdURI, f.origURI)
	ip = clientIP(&f, from, live.trusted)
	return key, method, methodConflict, uri, uriConflict, ip
}

// forwardedHeader returns the value of the first of two spellings of a
// forwarding header that is present, and whether they conflict: both
// present with different values, or either on several lines that differ.
func forwardedHeader(name, alt headerLines) (v []byte, conflict bool) {
	v, w := name.v, alt.v
	c := name.conflict || alt.conflict
	if len(v) == 0 {
		return w, c
	}
	return v, c || len(w) > 0 && !bytes.Equal(v, w)
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// value, or nil when v is not a bearer credential.
func bearerToken(v []byte) []byte {
	const p = "bearer "
	if len(v) < len(p) || !bytes.EqualFold(v[:len(p)], []byte(p)) {
		return nil
	}
	return trimOWS(v[len(p):])
}

// stripQuery cuts a URI at its query string or fragment: at the first
// '?' or '#', found by two byte searches (IndexAny, for a set of two,
// costs more than both).
func stripQuery(uri []byte) []byte {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if i := bytes.IndexByte(uri, '#'); i >= 0 {
		uri = uri[:i]
	}
	return uri
}

// appendHeaderValue appends s with control characters replaced by spaces,
// so that stored text can never split a response header.
func appendHeaderValue(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	i := plainEnd(bytesOf(s), 0)
	b = append(append(b, '"'), s[:i]...)
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				e := plainEnd(bytesOf(s), i)
				b = append(b, s[i:e]...)
				i = e
				continue
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
