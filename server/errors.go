package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

// Errors the server itself raises, mapped to statuses by errorResponse
// (alongside the store's and usagelog's errors).
var (
	// ErrNotFound: the key (or entry) does not exist. Answered with 404.
	ErrNotFound = errors.New("server: not found")
	// ErrConflict: the change conflicts with the current state (for
	// example, editing a revoked key). Answered with 409.
	ErrConflict = errors.New("server: conflict")
	// ErrInvalid: the request is well-formed but its content breaks a rule.
	// Answered with 422.
	ErrInvalid = errors.New("server: invalid request")
	// ErrBadRequest: the request cannot be parsed (malformed JSON, a bad
	// query parameter). Answered with 400.
	ErrBadRequest = errors.New("server: bad request")
	// ErrUnavailable: the server or its store is not ready. Answered with
	// 503.
	ErrUnavailable = errors.New("server: unavailable")

	errUnauthorized     = errors.New("server: unauthorized")
	errMethodNotAllowed = errors.New("server: method not allowed")
	errRouteNotFound    = errors.New("server: no such endpoint")
	errTooLarge         = errors.New("server: request too large")
	errHeaderTooLarge   = errors.New("server: request header too large")
	errTimeout          = errors.New("server: request timeout")
	errInternal         = errors.New("server: internal error")
)

// apiError carries a message for the client alongside the sentinel that
// decides its status.
type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

// errorf returns an error of the given kind whose message the client sees.
func errorf(kind error, format string, args ...any) error {
	return &apiError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON error envelope of every non-2xx answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string               `json:"code"`
	Message string               `json:"message"`
	Details []*engine.EntryError `json:"details,omitempty"`
}

// errorResponse is the one place that turns an error into an HTTP status
// and a JSON body.
func errorResponse(err error) (int, errorBody) {
	msg := err.Error()
	var ae *apiError
	if errors.As(err, &ae) {
		msg = ae.msg
	}
	var al *engine.AllowlistError
	if errors.As(err, &al) {
		m := "the allowlist is invalid; nothing was changed"
		if len(al.Problems) > 0 {
			m = al.Problems[0].Error()
			if len(al.Problems) > 1 {
				m += fmt.Sprintf(" (and %d more problems; see details)", len(al.Problems)-1)
			}
			m += "; nothing was changed"
		}
		return fasthttp.StatusUnprocessableEntity, errorBody{errorDetail{Code: "INVALID_ALLOWLIST", Message: m, Details: al.Problems}}
	}
	table := []struct {
		kind   error
		status int
		code   string
	}{
		{errUnauthorized, fasthttp.StatusUnauthorized, "UNAUTHORIZED"},
		{ErrNotFound, fasthttp.StatusNotFound, "NOT_FOUND"},
		{store.ErrNotFound, fasthttp.StatusNotFound, "NOT_FOUND"},
		{errRouteNotFound, fasthttp.StatusNotFound, "NOT_FOUND"},
		{errMethodNotAllowed, fasthttp.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"},
		{ErrConflict, fasthttp.StatusConflict, "CONFLICT"},
		{store.ErrConflict, fasthttp.StatusConflict, "CONFLICT"},
		{store.ErrPrecondition, fasthttp.StatusPreconditionFailed, "PRECONDITION_FAILED"},
		{ErrInvalid, fasthttp.StatusUnprocessableEntity, "VALIDATION_FAILED"},
		{store.ErrInvalid, fasthttp.StatusUnprocessableEntity, "VALIDATION_FAILED"},
		{ErrBadRequest, fasthttp.StatusBadRequest, "BAD_REQUEST"},
		{usagelog.ErrBadFilter, fasthttp.StatusBadRequest, "BAD_REQUEST"},
		{errTooLarge, fasthttp.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE"},
		{errHeaderTooLarge, fasthttp.StatusRequestHeaderFieldsTooLarge, "HEADER_TOO_LARGE"},
		{errTimeout, fasthttp.StatusRequestTimeout, "REQUEST_TIMEOUT"},
		{ErrUnavailable, fasthttp.StatusServiceUnavailable, "UNAVAILABLE"},
		{store.ErrUnavailable, fasthttp.StatusServiceUnavailable, "UNAVAILABLE"},
		{errNotImplemented, fasthttp.StatusNotImplemented, "NOT_IMPLEMENTED"},
		// A management request's context ends when the server shuts down.
		{context.Canceled, fasthttp.StatusServiceUnavailable, "UNAVAILABLE"},
		{context.DeadlineExceeded, fasthttp.StatusServiceUnavailable, "UNAVAILABLE"},
	}
	for _, t := range table {
		if errors.Is(err, t.kind) {
			return t.status, errorBody{errorDetail{Code: t.code, Message: msg}}
		}
	}
	// Anything else is a fault of ours; its text may describe internals.
	return fasthttp.StatusInternalServerError, errorBody{errorDetail{Code: "INTERNAL", Message: "internal error"}}
}

// writeError answers ctx with err as errorResponse maps it.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, body := errorResponse(err)
	b, _ := json.Marshal(body)
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="keygate-admin"`)
	}
	ctx.SetBody(append(b, '\n'))
}

// decisionStatus is the HTTP status of each engine decision.
var decisionStatus = [...]int{
	engine.Allow:          fasthttp.StatusOK,
	engine.DenyInvalidKey: fasthttp.StatusUnauthorized,
	engine.DenyScope:      fasthttp.StatusForbidden,
	engine.DenyIP:         fasthttp.StatusForbidden,
	engine.AllowReported:  fasthttp.StatusOK,
}

// decisionBody holds the precomputed JSON body of each denial, so that the
// check path never formats one. For IP_NOT_ALLOWED it is, byte for byte,
// the body the product contract fixes.
var decisionBody = func() (t [len(decisionStatus)][]byte) {
	for d := range t {
		if engine.Decision(d).Allowed() {
			continue
		}
		dec := engine.Decision(d)
		b, err := json.Marshal(errorBody{errorDetail{Code: dec.Code(), Message: dec.Message()}})
		if err != nil {
			panic(err)
		}
		t[d] = b
	}
	return t
}()

// badCheckStatus is the status of a malformed check request.
const badCheckStatus = fasthttp.StatusBadRequest

func hashToken(b []byte) [32]byte { return sha256.Sum256(b) }
