package server

import (
	"errors"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/store"
)

// A key's ETag is its version (store.Keys.GetKeyVersion): "v" and the
// number, quoted, a strong validator. GET /v1/keys/{id} and its allowlist
// send it; every write to the key answers with the new one; a write that
// sends If-Match applies only if the key is still at that version, else
// 412 PRECONDITION_FAILED and nothing changes. Without If-Match the last
// write wins (both writes are in the audit trail).

// errPrecondition: If-Match named a version the key no longer has.
var errPrecondition = store.ErrPrecondition

func etagOf(version uint64) string { return `"v` + strconv.FormatUint(version, 10) + `"` }

func setETag(ctx *fasthttp.RequestCtx, version uint64) {
	if version != 0 {
		ctx.Response.Header.Set(fasthttp.HeaderETag, etagOf(version))
	}
}

// ifMatch returns the version If-Match names: 0 when the header is absent
// or "*" (the key must exist, as every write requires anyway). Weak tags
// never match (RFC 9110 13.1.1: If-Match compares strongly), and a list of
// tags is refused: keygate hands out one tag per key. So is If-Match on
// several lines that differ (which is a list too, RFC 9110 5.3).
func ifMatch(ctx *fasthttp.RequestCtx) (uint64, error) {
	h, conflict := peekUnique(&ctx.Request.Header, fasthttp.HeaderIfMatch)
	if conflict { // an empty first line among them too
		return 0, errorf(ErrBadRequest, "If-Match is sent on several lines that differ: send one ETag from a GET of the key, like \"v12\", or *; nothing was changed")
	}
	if h == nil {
		return 0, nil
	}
	v := strings.TrimSpace(string(h))
	if v == "*" {
		return 0, nil
	}
	bad := errorf(ErrBadRequest, `If-Match must be one ETag from a GET of the key, like "v12" (with the quotes), or *; got %q`, v)
	if strings.HasPrefix(v, "W/") {
		return 0, errorf(errPrecondition, "If-Match %s is a weak tag, which never matches; send the ETag of a GET; nothing was changed", v)
	}
	if len(v) < 4 || v[0] != '"' || v[1] != 'v' || v[len(v)-1] != '"' {
		return 0, bad
	}
	n, err := strconv.ParseUint(v[2:len(v)-1], 10, 64)
	if err != nil || n == 0 {
		return 0, bad
	}
	return n, nil
}

// preconditionFailed rewrites the store's ErrPrecondition as the answer
// the client reads.
func preconditionFailed(id string, version uint64, err error) error {
	if err != nil && version != 0 && errors.Is(err, store.ErrPrecondition) {
		return errorf(errPrecondition, "key %s changed since %s (someone else edited it): GET it again and reapply your change; nothing was changed", id, etagOf(version))
	}
	return err
}
