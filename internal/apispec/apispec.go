// Package apispec validates HTTP exchanges with keygate against its
// OpenAPI document (package api), for the tests: every request a test
// sends and every response it gets, so that the code and the document
// cannot drift apart. It uses kin-openapi's openapi3filter, which
// validates OpenAPI 3.1 (JSON Schema 2020-12) documents.
package apispec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/keygate/keygate/api"
)

// Spec is the loaded document and its router.
type Spec struct {
	Doc *openapi3.T
}

var (
	loadOnce sync.Once
	loaded   *Spec
	loadErr  error
)

// Load parses and validates the OpenAPI document once.
func Load() (*Spec, error) {
	loadOnce.Do(func() {
		openapi3filter.RegisterBodyDecoder("application/openmetrics-text", openapi3filter.PlainBodyDecoder)
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.YAML())
		if err != nil {
			loadErr = fmt.Errorf("apispec: openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			loadErr = fmt.Errorf("apispec: openapi.yaml is not a valid OpenAPI document: %w", err)
			return
		}
		loaded = &Spec{Doc: doc}
	})
	return loaded, loadErr
}

// Exchange is one finished request and its answer.
type Exchange struct {
	Method  string
	URL     string // as sent, raw path and query
	Header  http.Header
	Body    []byte
	Status  int
	RHeader http.Header
	RBody   []byte
}

// InScope reports whether path is described by the document: /v1/...,
// /healthz, /readyz and /metrics. Every other path is the web UI's.
func InScope(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/v1" || path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// isAuthz reports whether a raw path is forward-auth, as the server
// decides it (any raw path starting with /v1/authz).
func isAuthz(raw string) bool { return strings.HasPrefix(raw, "/v1/authz") }

// Validate checks x against the document:
//   - a request to a path or method the document does not have must be
//     answered 404 or 405 with the error body;
//   - a request the document refuses (an unknown field, a wrong type, a
//     missing required field) must be answered with a 4xx;
//   - every answer's status must be listed for its operation, and its
//     body must match the schema (no undocumented field).
//
// Requests outside InScope (the web UI) are not checked.
func (s *Spec) Validate(x Exchange) error {
	req, err := http.NewRequest(x.Method, x.URL, bytes.NewReader(x.Body))
	if err != nil {
		return nil // not sendable either: nothing was exchanged
	}
	if !InScope(req.URL.Path) && !isAuthz(req.URL.EscapedPath()) {
		return nil
	}
	for k, v := range x.Header {
		req.Header[k] = v
	}
	if len(x.Body) > 0 && req.Header.Get("Content-Type") == "" {
		// The server reads every body as JSON, whatever it is labelled.
		req.Header.Set("Content-Type", "application/json")
	}
	what := fmt.Sprintf("%s %s → %d", x.Method, x.URL, x.Status)
	if x.Status == http.StatusRequestHeaderFieldsTooLarge || x.Status == http.StatusRequestEntityTooLarge || x.Status == http.StatusRequestTimeout {
		// Refused before routing, by the HTTP layer.
		return s.errorBody(what, x)
	}
	findReq := req
	if isAuthz(req.URL.EscapedPath()) || strings.HasPrefix(req.URL.Path, "/v1/authz/") {
		findReq = req.Clone(context.Background())
		findReq.URL.Path, findReq.URL.RawPath = "/v1/authz", ""
	}
	route, params, err := s.findRoute(findReq.Method, findReq.URL.Path)
	switch {
	case err != nil && (err.Error() == routers.ErrPathNotFound.Error() || err.Error() == routers.ErrMethodNotAllowed.Error()):
		// (The router may say either when only the method differs.)
		if x.Status != http.StatusNotFound && x.Status != http.StatusMethodNotAllowed {
			return fmt.Errorf("apispec: %s: the path or method is not in api/openapi.yaml, yet the server answered it", what)
		}
		return s.errorBody(what, x)
	case err != nil:
		return fmt.Errorf("apispec: %s: %w", what, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && (x.Status < 400 || x.Status > 499) {
		return fmt.Errorf("apispec: %s: api/openapi.yaml refuses this request, yet the server did not answer with a 4xx: %v", what, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 x.Status,
		Header:                 x.RHeader,
		Body:                   io.NopCloser(bytes.NewReader(x.RBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: x.Method == http.MethodHead},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("apispec: %s: the answer does not match api/openapi.yaml: %v\nbody: %.600s", what, err, x.RBody)
	}
	return nil
}

// errorBody checks that x's answer is the documented error body.
func (s *Spec) errorBody(what string, x Exchange) error {
	if x.Method == http.MethodHead {
		return nil
	}
	sc := s.Doc.Components.Schemas["Error"]
	var v any
	if err := jsonUnmarshal(x.RBody, &v); err != nil {
		return fmt.Errorf("apispec: %s: the error body is not JSON: %v: %.300s", what, err, x.RBody)
	}
	if err := sc.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("apispec: %s: the error body does not match api/openapi.yaml's Error: %v", what, err)
	}
	return nil
}

// findRoute finds the operation for method and path as the server routes
// them: a path parameter matches one segment, and a literal segment wins
// over a parameter (/v1/keys/{id}/allowlist/suggestions over
// .../{entry_id}).
func (s *Spec) findRoute(method, path string) (*routers.Route, map[string]string, error) {
	segs := strings.Split(path, "/")
	var best string
	bestLit := -1
	var bestParams map[string]string
	for p := range s.Doc.Paths.Map() {
		ps := strings.Split(p, "/")
		if len(ps) != len(segs) {
			continue
		}
		lit, params := 0, map[string]string{}
		for i, seg := range ps {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				if segs[i] == "" {
					lit = -1
					break
				}
				params[seg[1:len(seg)-1]] = segs[i]
				continue
			}
			if seg != segs[i] {
				lit = -1
				break
			}
			lit++
		}
		if lit > bestLit {
			best, bestLit, bestParams = p, lit, params
		}
	}
	if bestLit < 0 {
		return nil, nil, routers.ErrPathNotFound
	}
	item := s.Doc.Paths.Value(best)
	op := item.GetOperation(method)
	if op == nil {
		return nil, nil, routers.ErrMethodNotAllowed
	}
	return &routers.Route{Spec: s.Doc, Path: best, PathItem: item, Method: method, Operation: op}, bestParams, nil
}
