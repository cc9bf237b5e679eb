package server

import (
	"bytes"
	"slices"

	"github.com/valyala/fasthttp"
)

// headerLines is what the decision reads of one request header: its
// first value and whether another line of it differs (spaces and tabs
// around each ignored), as peekUnique answers.
type headerLines struct {
	v        []byte
	conflict bool
	seen     bool
}

func (l *headerLines) add(v []byte) {
	if !l.seen {
		l.v, l.seen = v, true
		return
	}
	if !l.conflict && !bytes.Equal(trimOWS(v), trimOWS(l.v)) {
		l.conflict = true
	}
}

// passRealIPs and passXFFLines bound what one pass over the headers
// gathers: with more real-IP headers configured the headers are read
// name by name; more X-Forwarded-For lines are read with PeekAll.
const (
	passRealIPs  = 4
	passXFFLines = 8
)

// fwdHeaders is what a forward-auth decision reads of the request's
// headers: the key's two, the two spellings each of the forwarded method
// and URI, the configured real-IP headers (in their order, realIP) and
// the X-Forwarded-For lines (in theirs, xffLines).
type fwdHeaders struct {
	auth, apiKey, fwdMethod, origMethod, fwdURI, origURI headerLines

	h      *fasthttp.RequestHeader
	names  []string // the real-IP header names
	passed bool     // gathered by the pass: real and xff hold the rest
	real   [passRealIPs]headerLines
	xff    [passXFFLines][]byte // the X-Forwarded-For lines gathered: the first nxff
	nxff   int                  // or -1: more than passXFFLines
}

// passable reports whether one pass over the headers can gather the
// real-IP header names (in fasthttp's normal form): at most passRealIPs
// of them, none that fasthttp keeps apart from the other headers (Host,
// User-Agent, Cookie...) and none that the pass reads as another header.
func passable(names []string) bool {
	return len(names) <= passRealIPs && !slices.ContainsFunc(names, func(n string) bool {
		switch n {
		case fasthttp.HeaderHost, fasthttp.HeaderContentType, fasthttp.HeaderContentLength, fasthttp.HeaderUserAgent,
			fasthttp.HeaderCookie, fasthttp.HeaderTrailer, fasthttp.HeaderConnection, fasthttp.HeaderTransferEncoding,
			reqAuthorization, reqAPIKey, reqForwardedMethod, reqOriginalMethod, reqForwardedURI, reqOriginalURI, reqXForwardedFor:
			return true
		}
		return false
	})
}

// read gathers f from h. With normalised header names (keygate's
// listeners never turn that off) and real-IP headers that are passable,
// it is one pass over the headers (h.All): one PeekAll per name instead,
// eight of them, each copying and checking the name and then scanning
// every header, cost a quarter of a forward-auth request's instructions.
// Otherwise the headers are read name by name, as PeekAll finds them.
func (f *fwdHeaders) read(h *fasthttp.RequestHeader, live *liveSettings) {
	*f = fwdHeaders{h: h, names: live.realIPNorm}
	if h.DisableNormalizing() {
		// Names as they arrived: looked up as configured.
		f.names = live.realIP
	} else {
		h.EnableNormalizing()
		f.passed = live.realIPPass
	}
	if !f.passed {
		for _, p := range [...]struct {
			l    *headerLines
			name string
		}{{&f.auth, reqAuthorization}, {&f.apiKey, reqAPIKey}, {&f.fwdMethod, reqForwardedMethod},
			{&f.origMethod, reqOriginalMethod}, {&f.fwdURI, reqForwardedURI}, {&f.origURI, reqOriginalURI}} {
			p.l.v, p.l.conflict = peekUnique(h, p.name)
		}
		return
	}
	for k, v := range h.All() {
		switch string(k) {
		case reqAuthorization:
			f.auth.add(v)
		case reqAPIKey:
			f.apiKey.add(v)
		case reqForwardedMethod:
			f.fwdMethod.add(v)
		case reqOriginalMethod:
			f.origMethod.add(v)
		case reqForwardedURI:
			f.fwdURI.add(v)
		case reqOriginalURI:
			f.origURI.add(v)
		case reqXForwardedFor:
			switch {
			case f.nxff < 0:
			case f.nxff < passXFFLines:
				f.xff[f.nxff] = v
				f.nxff++
			default:
				f.nxff = -1 // read by xffLines
			}
		default:
			for i, name := range f.names {
				if string(k) == name {
					f.real[i].add(v)
				}
			}
		}
	}
}

// realIP returns real-IP header i as peekUnique does: nil when absent.
func (f *fwdHeaders) realIP(i int) (v []byte, conflict bool) {
	if f.passed {
		return f.real[i].v, f.real[i].conflict
	}
	return peekUnique(f.h, f.names[i])
}

// xffLines returns the X-Forwarded-For lines, in order. When they were
// not all gathered, they come from PeekAll, valid until the next PeekAll
// on the header: call it after the real-IP headers.
func (f *fwdHeaders) xffLines() [][]byte {
	if f.passed && f.nxff >= 0 {
		return f.xff[:f.nxff]
	}
	return f.h.PeekAll(reqXForwardedFor)
}
