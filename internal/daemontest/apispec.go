package daemontest

import (
	"net/http"

	"github.com/keygate/keygate/internal/apispec"
)

// validateAPI checks one finished exchange against api/openapi.yaml.
func validateAPI(req *http.Request, body []byte, res *http.Response, rbody []byte) error {
	spec, err := apispec.Load()
	if err != nil {
		return err
	}
	h := req.Header.Clone()
	if req.Host != "" && req.Host != req.URL.Host {
		h.Set("Host", req.Host)
	}
	return spec.Validate(apispec.Exchange{
		Method: req.Method, URL: req.URL.String(), Header: h, Body: body,
		Status: res.StatusCode, RHeader: res.Header, RBody: rbody,
	})
}
