package server

import "github.com/valyala/fasthttp"

// actor names the management API in the store's audit trail.
const actor = "admin-api"

// authorized reports whether ctx carries the admin token.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	// Authorization on lines that differ is no token: a proxy in front
	// of management that adds its own beside the client's could check
	// one while keygate reads the other.
	v, conflict := peekUnique(&ctx.Request.Header, fasthttp.HeaderAuthorization)
	tok := bearerToken(v)
	return !conflict && len(tok) > 0 && tokenEqual(tok, &s.adminHash)
}

// admitted reports whether ctx carries the admin token, and answers 401
// when it does not.
func (s *Server) admitted(ctx *fasthttp.RequestCtx) bool {
	if s.authorized(ctx) {
		return true
	}
	writeError(ctx, errorf(errUnauthorized, "missing or wrong admin token: send Authorization: Bearer <admin token>"))
	return false
}

// allowGet reports whether ctx is a GET (or, with head, a HEAD), and
// answers 405 when it is not.
func allowGet(ctx *fasthttp.RequestCtx, head bool) bool {
	if ctx.IsGet() || head && ctx.IsHead() {
		return true
	}
	writeError(ctx, methodNotAllowed("GET"))
	return false
}

func methodNotAllowed(allow string) error {
	return errorf(errMethodNotAllowed, "method not allowed here; use %s", allow)
}
