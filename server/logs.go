package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

// handleLogs serves GET /v1/logs and GET /v1/logs/export.csv.
func (s *Server) handleLogs(ctx *fasthttp.RequestCtx) {
	if !s.admitted(ctx) || !allowGet(ctx, true) {
		return
	}
	// A page takes the filters, limit and cursor; the export takes the
	// filters (all their rows).
	takes := logPageParams
	switch string(ctx.Path()) {
	case "/v1/logs":
	case "/v1/logs/export.csv":
		takes = logFilterParams
	default:
		writeError(ctx, errorf(errRouteNotFound, "no such endpoint: %s", ctx.Path()))
		return
	}
	if err := checkQuery(ctx, takes...); err != nil {
		writeError(ctx, err)
		return
	}
	f, err := parseLogFilter(ctx.QueryArgs())
	if err != nil {
		writeError(ctx, err)
		return
	}
	switch string(ctx.Path()) {
	case "/v1/logs":
		page, err := s.store.QueryLogs(ctx, f)
		if err != nil {
			writeError(ctx, err)
			return
		}
		if page.Items == nil {
			page.Items = []usagelog.Record{}
		}
		writeJSON(ctx, fasthttp.StatusOK, page)
	case "/v1/logs/export.csv":
		names, err := s.keyNames(ctx, f.KeyID)
		if err != nil {
			writeError(ctx, err)
			return
		}
		ctx.SetContentType("text/csv; charset=utf-8")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.Response.Header.Set("Content-Disposition", `attachment; filename="keygate-usage-logs-`+s.cfg.Now().UTC().Format("20060102T150405Z")+`.csv"`)
		// The row count arrives as a trailer once the last row is out,
		// so a client can tell a whole export from a cut one: an export
		// that fails, or outlasts the shutdown drain, has its connection
		// closed without the terminating chunk (never a clean end).
		ctx.Response.Header.SetTrailer(HeaderRows)
		if ctx.IsHead() {
			// The headers a GET gets, and no export: a stream writer
			// would run with nowhere to write, fail, and close the
			// connection under the client's next request.
			ctx.Response.Header.SetContentLength(-1)
			return
		}
		conn := ctx.Conn()
		dw := &deadlineWriter{conn: conn, timeout: s.cfg.WriteTimeout}
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			ectx, cancel := context.WithCancel(s.drain)
			defer cancel()
			// A reader too slow to finish before the drain ends leaves
			// the writer blocked: closing the connection frees it.
			stopAbort := context.AfterFunc(ectx, func() { conn.Close() })
			dw.w = w
			n, err := s.store.ExportCSV(ectx, dw, f, names)
			if err == nil {
				err = w.Flush()
			}
			if !stopAbort() || err != nil {
				if err == nil {
					err = errors.New("aborted at the end of the shutdown drain")
				}
				s.log.Warn("CSV export failed; connection closed without the end of the response", "err", err, "rows", n)
				conn.Close()
				return
			}
			ctx.Response.Header.Set(HeaderRows, strconv.Itoa(n))
		})
	}
}

// keyNames reads, as an export starts, the names of the keys it can
// show: key keyID's alone when the export is filtered by it, else every
// key's, in one store read (never one per row). They come from the store
// rather than the key set, so that on a fleet's shared store they are the
// fleet's names at the start of the export, not this daemon's copy,
// which follows the store with a delay. A record of no key, or of a key
// no longer stored, gets an empty name.
func (s *Server) keyNames(ctx context.Context, keyID string) (usagelog.KeyNames, error) {
	var keys []*engine.Key
	if keyID != "" {
		k, err := s.store.GetKey(ctx, keyID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if k != nil {
			keys = append(keys, k)
		}
	} else {
		var err error
		if keys, err = s.store.ListKeys(ctx); err != nil {
			return nil, err
		}
	}
	names := make(map[string]string, len(keys))
	for _, k := range keys {
		names[k.ID] = k.Name
	}
	return func(id string) string { return names[id] }, nil
}

// HeaderRows is the trailer of a CSV export: the number of data rows
// (header excluded), sent only after the last one. An export without it
// is incomplete.
const HeaderRows = "X-Keygate-Rows"

// deadlineWriter moves the connection's write deadline forward while a
// streamed response makes progress, so that WriteTimeout bounds a stall
// rather than the length of an export: fasthttp sets one deadline per
// response, which cut large exports off mid-row with a 200 already sent.
type deadlineWriter struct {
	w       *bufio.Writer
	conn    net.Conn
	timeout time.Duration
	renewAt time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.After(d.renewAt) {
		d.conn.SetWriteDeadline(now.Add(d.timeout))
		d.renewAt = now.Add(d.timeout / 4)
	}
	return d.w.Write(p)
}

// parseLogFilter reads the log filters from the query string.
func parseLogFilter(args *fasthttp.Args) (usagelog.Filter, error) {
	var f usagelog.Filter
	var problems []string
	f.KeyID = string(args.Peek("key_id"))
	f.Method = strings.ToUpper(string(args.Peek("method")))
	f.Cursor = string(args.Peek("cursor"))
	if st := string(args.Peek("status")); st != "" {
		if _, _, err := usagelog.ParseStatusFilter(st); err != nil {
			problems = append(problems, fmt.Sprintf("status %q: want a status code such as 403 or a class such as 4xx", st))
		}
		f.Status = strings.ToLower(st)
	}
	if c := string(args.Peek("code")); c != "" {
		f.Code = c
		var fe *usagelog.FilterError
		if err := (usagelog.Filter{Code: c}).Validate(); errors.As(err, &fe) {
			problems = append(problems, "code: "+fe.Message)
		}
	}
	f.IP = string(args.Peek("ip"))
	f.PathPrefix = string(args.Peek("path_prefix"))
	var fe *usagelog.FilterError
	if err := (usagelog.Filter{IP: f.IP, PathPrefix: f.PathPrefix}).Validate(); errors.As(err, &fe) {
		problems = append(problems, fe.Field+": "+fe.Message)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		v := string(args.Peek(p.name))
		if v == "" {
			continue
		}
		t, problem := parseLogTime(p.name, v)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		*p.dst = t
	}
	if usagelog.CheckRange(f.From, f.To) != nil {
		problems = append(problems, "from must be before to")
	}
	if v := string(args.Peek("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > usagelog.MaxLimit {
			problems = append(problems, fmt.Sprintf("limit %q: want a number from 1 to %d", v, usagelog.MaxLimit))
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		return f, errorf(ErrBadRequest, "%s", strings.Join(problems, "; "))
	}
	return f, nil
}
