package server

import (
	"embed"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

//go:embed ui
var uiFiles embed.FS

var uiFS, _ = fs.Sub(uiFiles, "ui")

// handleUI serves the embedded web UI: GET and HEAD only, index.html at /.
func (s *Server) handleUI(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, methodNotAllowed("GET"))
		return
	}
	name := strings.TrimPrefix(string(ctx.Path()), "/")
	if name == "" || strings.HasSuffix(name, "/") {
		name += "index.html"
	}
	b, err := fs.ReadFile(uiFS, name)
	if err != nil {
		writeError(ctx, errorf(errRouteNotFound, "no such page: /%s", name))
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := &ctx.Response.Header
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	ctx.SetBody(b)
}
