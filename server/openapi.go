package server

import (
	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/api"
)

// handleOpenAPI serves GET /v1/openapi.json: the API's OpenAPI document
// (package api). It needs no admin token: it describes the API and holds
// no secret, and automation fetches it before it has a token.
func (s *Server) handleOpenAPI(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, methodNotAllowed("GET"))
		return
	}
	if err := checkQuery(ctx); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(api.JSON())
}
