package server

import "github.com/valyala/fasthttp"

// actor names the management API in the store's audit trail.
const actor = "admin-api"

// authorized reports whether ctx carries the admin token.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	tok := bearerToken(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	return len(tok) > 0 && tokenEqual(tok, &s.adminHash)
}

func methodNotAllowed(allow string) error {
	return errorf(errMethodNotAllowed, "method not allowed here; use %s", allow)
}
