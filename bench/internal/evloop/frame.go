package evloop

import (
	"bytes"
	"errors"
)

// Frame is what FrameRequest found of the request at the start of a
// buffer.
type Frame struct {
	// Len is the request's length: its head, the blank line and its body.
	Len int
	// Close: the connection ends after the answer (Connection: close, or
	// HTTP/1.0, which is never kept alive here).
	Close bool
	// Head: the method is HEAD (the answer has no body).
	Head bool
}

// Framing errors: the connection is answered with Status and closed.
var (
	ErrHeaderTooLarge = errors.New("request header too large")
	ErrBodyTooLarge   = errors.New("request body too large")
	ErrBadRequest     = errors.New("bad request")
	ErrChunked        = errors.New("chunked request bodies are not supported")
)

// Status is the HTTP status answering a framing error.
func Status(err error) int {
	switch err {
	case ErrHeaderTooLarge:
		return 431
	case ErrBodyTooLarge:
		return 413
	case ErrChunked:
		return 501
	}
	return 400
}

var crlfcrlf = []byte("\r\n\r\n")

// FrameRequest finds the request at the start of b: the request line and
// headers up to CRLFCRLF (at most maxHeader bytes), then a Content-Length
// body (at most maxBody). ok is false, with a nil error, while b holds
// only part of it.
func FrameRequest(b []byte, maxHeader, maxBody int) (f Frame, ok bool, err error) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) > maxHeader {
			return f, false, ErrHeaderTooLarge
		}
		return f, false, nil
	}
	if end+4 > maxHeader {
		return f, false, ErrHeaderTooLarge
	}
	head := b[:end+2]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	sp := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp <= 0 || sp2 <= sp+1 {
		return f, false, ErrBadRequest
	}
	method, proto := line[:sp], line[sp2+1:]
	f.Head = string(method) == "HEAD"
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		f.Close = true
	default:
		return f, false, ErrBadRequest
	}
	length := 0
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, val, found := bytes.Cut(h, []byte(":"))
		if !found || len(name) == 0 {
			return f, false, ErrBadRequest
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if len(val) == 0 {
				return f, false, ErrBadRequest
			}
			n := 0
			for _, c := range val {
				if c < '0' || c > '9' {
					return f, false, ErrBadRequest
				}
				if n > maxBody {
					return f, false, ErrBodyTooLarge
				}
				n = n*10 + int(c-'0')
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return f, false, ErrChunked
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(val, []byte(",")) {
				if bytes.EqualFold(bytes.TrimSpace(tok), []byte("close")) {
					f.Close = true
				}
			}
		}
	}
	if length > maxBody {
		return f, false, ErrBodyTooLarge
	}
	f.Len = end + 4 + length
	if len(b) < f.Len {
		return f, false, nil
	}
	return f, true, nil
}
