//go:build linux

package main

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/bench/internal/evloop"
)

const (
	maxHeader = 8 << 10  // keygate's MaxHeaderBytes default (fasthttp's ReadBufferSize there)
	maxBody   = 64 << 10 // keygate's MaxBodyBytes default
)

// handler drives a fasthttp.RequestHandler from the event loop. The loop
// runs it on one goroutine, so the reader and writer are shared.
type handler struct {
	h   fasthttp.RequestHandler
	log fasthttp.Logger
	src memReader
	br  *bufio.Reader
	out appendWriter
	bw  *bufio.Writer
}

func newHandler(h fasthttp.RequestHandler, log *slog.Logger) *handler {
	hd := &handler{h: h, log: printer{log}}
	hd.br = bufio.NewReaderSize(&hd.src, maxHeader)
	hd.bw = bufio.NewWriterSize(&hd.out, 4<<10)
	return hd
}

// conn is a connection's fasthttp state.
type conn struct {
	ctx          fasthttp.RequestCtx
	addrs        addrConn
	sentContinue bool
}

// addrConn is the net.Conn RequestCtx.Init2 takes: fasthttp asks it only
// for the addresses (RemoteAddr, LocalAddr).
type addrConn struct {
	net.Conn      // nil: any other method panics
	local, remote net.Addr
}

func (a *addrConn) LocalAddr() net.Addr  { return a.local }
func (a *addrConn) RemoteAddr() net.Addr { return a.remote }

type printer struct{ l *slog.Logger }

func (p printer) Printf(format string, args ...any) {
	p.l.Info("fasthttp", "msg", format, "args", args)
}

func (h *handler) Open(c *evloop.Conn) {
	fc := &conn{addrs: addrConn{local: c.Local, remote: c.Remote}}
	fc.ctx.Init2(&fc.addrs, h.log, false)
	c.User = fc
}

func (h *handler) Closed(c *evloop.Conn) { c.User = nil }

// memReader reads the bytes the loop has for a connection, then io.EOF.
type memReader struct{ b []byte }

func (r *memReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// appendWriter appends to the connection's output.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// Serve parses and answers every complete request in in (see
// evloop.Handler).
func (h *handler) Serve(c *evloop.Conn, in, out []byte, eof bool) (used int, _ []byte, closeConn bool) {
	fc := c.User.(*conn)
	ctx := &fc.ctx
	h.src.b = in
	h.br.Reset(&h.src)
	h.out.b = out
	h.bw.Reset(&h.out)
	pos := func() int { return len(in) - len(h.src.b) - h.br.Buffered() }
	for used < len(in) && !closeConn {
		req := &ctx.Request
		err := req.Header.Read(h.br)
		if err == nil {
			if req.MayContinue() && !fc.sentContinue && len(in)-pos() < req.Header.ContentLength() {
				// The client waits for a 100 before it sends the body.
				h.bw.Write(continue100)
				fc.sentContinue = true
				break
			}
			err = req.ContinueReadBody(h.br, maxBody, false)
		}
		if err != nil {
			if !eof && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				req.Reset()
				break // incomplete: parsed again from its start with more bytes
			}
			h.writeError(ctx, err)
			used, closeConn = len(in), true
			break
		}
		used = pos()
		fc.sentContinue = false
		closeConn = req.Header.ConnectionClose()
		http11 := req.Header.IsHTTP11()
		h.h(ctx)
		if req.Header.IsHead() {
			ctx.Response.SkipBody = true
		}
		closeConn = closeConn || ctx.Response.Header.ConnectionClose()
		if closeConn {
			ctx.Response.Header.SetConnectionClose()
		} else if !http11 {
			ctx.Response.Header.Set(fasthttp.HeaderConnection, "keep-alive")
		}
		h.write(ctx)
	}
	h.bw.Flush()
	return used, h.out.b, closeConn
}

// write writes ctx's response and resets the request and response for
// the connection's next request.
func (h *handler) write(ctx *fasthttp.RequestCtx) {
	if len(ctx.Response.Header.Server()) == 0 {
		ctx.Response.Header.SetServer("keygate")
	}
	ctx.Response.Write(h.bw)
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.ResetUserValues()
}

// writeError answers a request that could not be read, as keygate's
// ErrorHandler would in substance (its exact bodies are server's, not
// exported), and closes the connection.
func (h *handler) writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code, msg := fasthttp.StatusBadRequest, "bad_request", "the request could not be parsed as HTTP"
	var sb *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &sb):
		status, code, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "the request header is larger than 8192 bytes"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, code, msg = fasthttp.StatusRequestEntityTooLarge, "too_large", "the request body is larger than 65536 bytes"
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetBodyString(`{"error":{"code":"` + code + `","message":"` + msg + `"}}` + "\n")
	ctx.Response.Header.SetConnectionClose()
	h.write(ctx)
}
