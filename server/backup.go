package server

import (
	"bufio"
	"context"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/store"
)

// errNotImplemented: the store has no such capability. Answered with 501.
var errNotImplemented = errors.New("server: not implemented")

// handleBackup serves GET /v1/backup: a consistent backup of the store,
// streamed while the daemon serves, when the store can back itself up
// (store.Backuper); 501 otherwise.
func (s *Server) handleBackup(ctx *fasthttp.RequestCtx) {
	if !s.admitted(ctx) || !allowGet(ctx, false) {
		return
	}
	if err := checkQuery(ctx); err != nil {
		writeError(ctx, err)
		return
	}
	b, ok := s.store.(store.Backuper)
	if !ok {
		writeError(ctx, errorf(errNotImplemented, "this store has no built-in backup: its data lives in a database server, back that up with the database's own tools (PostgreSQL: pg_dump, or base backups with WAL archiving for point-in-time recovery)"))
		return
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="keygate-backup-`+s.cfg.Now().UTC().Format("20060102T150405Z")+`.kgb"`)
	dw := &deadlineWriter{conn: ctx.Conn(), timeout: s.cfg.WriteTimeout}
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		dw.w = w
		if err := b.Backup(context.Background(), dw); err != nil {
			// The status line is gone: the file ends without its
			// trailer, which keygate restore refuses.
			s.log.Warn("backup failed", "err", err)
		}
		w.Flush()
	})
}
