// Package extauthz serves Envoy's external authorization over gRPC
// (envoy.service.auth.v3.Authorization/Check), so that Envoy, Istio and
// Envoy Gateway ask keygate about every request without the HTTP
// forward-auth detour. It is a transport only: the decision — route
// scope, key check, decision order, metrics, usage log — is
// server.Server.Authorize, the step /v1/authz runs.
//
// A CheckRequest is read as Envoy fills it in:
//
//   - the client address is attributes.source.address.socket_address:
//     the downstream as Envoy sees it (after use_remote_address and
//     xff_num_trusted_hops), never a header the client could set;
//   - the key is the Bearer token of the authorization header, else
//     x-api-key; Envoy joins a header's repeated lines with ",", and
//     lines that differ are no key (401), as on /v1/authz;
//   - method and path are attributes.request.http.method and .path (the
//     request target: the query is ignored, the absolute form read as
//     X-Forwarded-Uri is).
//
// Allowed: status OK, the identity headers set (overwriting) in
// ok_response.headers, and every other x-keygate-* header the client sent
// (any spelling, "_" for "-" included) in headers_to_remove. Denied:
// UNAUTHENTICATED (invalid key) or PERMISSION_DENIED, with a
// denied_response carrying the HTTP status, the JSON error body and the
// x-keygate-error-* headers /v1/authz sends.
package extauthz

import (
	"context"
	"net/netip"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/server"
)

// Lower-case names, as Envoy hands headers over and as HTTP/2 sends them.
const (
	headerKeyID    = "x-keygate-key-id"
	headerKeyName  = "x-keygate-key-name"
	headerScopes   = "x-keygate-scopes"
	headerErrCode  = "x-keygate-error-code"
	headerErrMsg   = "x-keygate-error-message"
	identityPrefix = "x-keygate-"
)

// Service is the Authorization service. Create it with New; it is safe
// for concurrent use.
type Service struct {
	authv3.UnimplementedAuthorizationServer
	srv *server.Server
	// denied holds the whole, immutable answer to each denial: it is
	// marshalled as it is, never modified.
	denied [numDecisions]*authv3.CheckResponse
}

// numDecisions bounds the engine's decisions; a decision at or beyond
// it (one added to the engine but not here) is answered as a 403 built
// on the spot.
const numDecisions = 16

// New returns the service deciding with s.
func New(s *server.Server) *Service {
	a := &Service{srv: s}
	for d := range engine.Decision(numDecisions) {
		if st := server.DecisionStatus(d); st != 0 && st != 200 {
			a.denied[d] = deniedResponse(d)
		}
	}
	return a
}

// Register registers the service on g.
func (a *Service) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, a) }

// Check decides one request. It never returns an error: every request,
// malformed ones included, gets a decision (a request without a usable
// key is UNAUTHENTICATED).
func (a *Service) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	auth, authConflict := header(h, "authorization")
	apiKey, keyConflict := header(h, "x-api-key")
	var key []byte
	if !authConflict && !keyConflict {
		key = server.PresentedKey(auth, apiKey)
	}
	res := a.srv.Authorize(&server.ForwardedCheck{
		Key:    key,
		Method: bytesOf(h.GetMethod()),
		Target: bytesOf(h.GetPath()),
		IP:     sourceIP(attrs.GetSource().GetAddress()),
	})
	// Allowed as /v1/authz allows: a report-only key's request from an
	// address outside its allowlist too (recorded as
	// ip_not_allowed_reported).
	if res.Decision.Allowed() {
		return allowed(res.Key, h), nil
	}
	if int(res.Decision) < numDecisions && a.denied[res.Decision] != nil {
		return a.denied[res.Decision], nil
	}
	return deniedResponse(res.Decision), nil
}

// okAnswer is every message of an OK answer, allocated together: one
// allocation instead of eleven.
type okAnswer struct {
	resp   authv3.CheckResponse
	oneof  authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
	status rpcstatus.Status
	opts   [3]corev3.HeaderValueOption
	vals   [3]corev3.HeaderValue
	list   [3]*corev3.HeaderValueOption
}

// allowed is the OK answer for key k.
func allowed(k *engine.KeyInfo, h *authv3.AttributeContext_HttpRequest) *authv3.CheckResponse {
	var buf [256]byte
	b := server.AppendKeyName(buf[:0], k)
	n := len(b)
	b = server.AppendScopes(b, k)
	text := string(b) // the name, then the scopes: one copy for both
	a := new(okAnswer)
	for i, kv := range [3][2]string{{headerKeyID, k.ID()}, {headerKeyName, text[:n]}, {headerScopes, text[n:]}} {
		a.vals[i].Key, a.vals[i].Value = kv[0], kv[1]
		a.opts[i].Header = &a.vals[i]
		a.opts[i].AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		a.list[i] = &a.opts[i]
	}
	a.ok.Headers = a.list[:]
	a.ok.HeadersToRemove = clientIdentityHeaders(h)
	a.oneof.OkResponse = &a.ok
	a.status.Code = int32(codes.OK)
	a.resp.Status = &a.status
	a.resp.HttpResponse = &a.oneof
	return &a.resp
}

// clientIdentityHeaders lists the headers of the client's request that
// could pose as keygate's: every name that reads x-keygate-* once
// case and "_" for "-" are ignored (Envoy's headers_with_underscores_action
// may let x_keygate_key_id through, and some frameworks read it as
// x-keygate-key-id). The three identity names themselves are left out:
// ok_response.headers overwrites them, and were Envoy to apply
// headers_to_remove after the headers it sets, listing them would remove
// keygate's own values; this way either order gives the upstream
// keygate's identity.
func clientIdentityHeaders(h *authv3.AttributeContext_HttpRequest) []string {
	var out []string
	consider := func(name string) {
		if !looksLikeOurs(name) {
			return
		}
		switch name {
		case headerKeyID, headerKeyName, headerScopes:
			return
		}
		for _, o := range out {
			if o == name {
				return
			}
		}
		out = append(out, name)
	}
	for name := range h.GetHeaders() {
		consider(name)
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		consider(hv.GetKey())
	}
	return out
}

// looksLikeOurs reports whether name is x-keygate-... up to ASCII case
// and "_" for "-".
func looksLikeOurs(name string) bool {
	if len(name) < len(identityPrefix) {
		return false
	}
	for i := 0; i < len(identityPrefix); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == '_' {
			c = '-'
		}
		if c != identityPrefix[i] {
			return false
		}
	}
	return true
}

// deniedResponse is the answer to denial d.
func deniedResponse(d engine.Decision) *authv3.CheckResponse {
	status := server.DecisionStatus(d)
	if status == 0 {
		status = 403 // fail closed on a decision this package predates
	}
	code := codes.PermissionDenied
	if status == 401 {
		code = codes.Unauthenticated
	}
	headers := []*corev3.HeaderValueOption{
		set("content-type", "application/json"),
		set("cache-control", "no-store"),
		set(headerErrCode, d.Code()),
		set(headerErrMsg, d.Message()),
	}
	if status == 401 {
		headers = append(headers, set("www-authenticate", server.WWWAuthenticate))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: d.Message()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: headers,
			Body:    string(server.DenialBody(d)),
		}},
	}
}

func set(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// header returns the value of the lower-case header name: from the
// headers map (repeated lines already joined with ",", which
// server.PresentedKey splits), or, when Envoy encodes raw headers, from
// header_map, whose repeated lines arrive apart: lines that differ are
// a conflict.
func header(h *authv3.AttributeContext_HttpRequest, name string) (v []byte, conflict bool) {
	if m := h.GetHeaders(); m != nil {
		if s, ok := m[name]; ok {
			return bytesOf(s), false
		}
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if !equalFold(hv.GetKey(), name) {
			continue
		}
		w := hv.GetRawValue()
		if w == nil {
			w = bytesOf(hv.GetValue())
		}
		if v != nil && string(v) != string(w) {
			return v, true
		}
		v = w
	}
	return v, false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// sourceIP is the downstream address Envoy saw; anything but an IP
// socket address (a pipe, a missing field) is the zero Addr, which
// matches no allowlist.
func sourceIP(a *corev3.Address) netip.Addr {
	ip, err := netip.ParseAddr(a.GetSocketAddress().GetAddress())
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// bytesOf returns s's bytes without copying; server.Authorize only reads
// them, during the call.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
