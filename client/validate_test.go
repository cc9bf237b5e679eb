package client_test

import (
	"bytes"
	"io"
	"net/http"

	"github.com/keygate/keygate/internal/apispec"
)

// validating is a RoundTripper that checks every exchange of the
// examples against api/openapi.yaml, so the client sends only what the
// document describes and decodes what it promises.
type validating struct{ next http.RoundTripper }

func (v validating) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	res, err := v.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	rbody, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(rbody))
	spec, err := apispec.Load()
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(apispec.Exchange{Method: req.Method, URL: req.URL.String(), Header: req.Header, Body: body,
		Status: res.StatusCode, RHeader: res.Header, RBody: rbody}); err != nil {
		return nil, err
	}
	return res, nil
}
