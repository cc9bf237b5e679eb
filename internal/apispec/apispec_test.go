package apispec

import (
	"net/http"
	"strings"
	"testing"
)

func mustLoad(t *testing.T) *Spec {
	t.Helper()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q: want 3.1", s.Doc.OpenAPI)
	}
	return s
}

const key = `{"id":"key_1","name":"n","description":"","scopes":[],"allowlist":[],"created_at":"2026-01-02T15:04:05Z",` +
	`"expires_at":null,"revoked_at":null,"status":"active","hint":"abcd","last_used_at":null,"report_only":false,"previous_secret":null}`

func json200() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// The validator refuses what the document does not say: an answer with a
// field it does not list, a status it does not list for the operation,
// a request field it does not list answered with a 2xx, and an answered
// path it does not have.
func TestValidateRefusesUndocumented(t *testing.T) {
	s := mustLoad(t)
	ok := Exchange{Method: "GET", URL: "http://h/v1/keys/key_1", Status: 200, RHeader: json200(), RBody: []byte(key)}
	if err := s.Validate(ok); err != nil {
		t.Fatalf("a documented answer: %v", err)
	}
	for _, tt := range []struct {
		name string
		x    Exchange
		want string
	}{
		{"undocumented field", Exchange{Method: "GET", URL: "http://h/v1/keys/key_1", Status: 200, RHeader: json200(),
			RBody: []byte(strings.TrimSuffix(key, "}") + `,"node":"a"}`)}, "node"},
		{"undocumented status", Exchange{Method: "GET", URL: "http://h/v1/keys/key_1", Status: 418, RHeader: json200(),
			RBody: []byte(`{"error":{"code":"INTERNAL","message":"x"}}`)}, "status is not supported"},
		{"undocumented error code", Exchange{Method: "GET", URL: "http://h/v1/keys/key_1", Status: 404, RHeader: json200(),
			RBody: []byte(`{"error":{"code":"GONE","message":"x"}}`)}, "code"},
		{"missing field", Exchange{Method: "GET", URL: "http://h/v1/keys/key_1", Status: 200, RHeader: json200(),
			RBody: []byte(strings.Replace(key, `"hint":"abcd",`, "", 1))}, "hint"},
		{"unknown request field accepted", Exchange{Method: "PATCH", URL: "http://h/v1/keys/key_1", Body: []byte(`{"nmae":"x"}`),
			Status: 200, RHeader: json200(), RBody: []byte(key)}, "refuses this request"},
		{"undocumented path answered", Exchange{Method: "GET", URL: "http://h/v1/keys/key_1/stats", Status: 200, RHeader: json200(), RBody: []byte(`{}`)}, "not in api/openapi.yaml"},
		{"undocumented method answered", Exchange{Method: "PUT", URL: "http://h/v1/keys", Status: 200, RHeader: json200(), RBody: []byte(`{}`)}, "not in api/openapi.yaml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(tt.x)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	// A refused request may be refused: an unknown field answered 400.
	bad := Exchange{Method: "PATCH", URL: "http://h/v1/keys/key_1", Body: []byte(`{"nmae":"x"}`), Status: 400, RHeader: json200(),
		RBody: []byte(`{"error":{"code":"BAD_REQUEST","message":"unknown field nmae"}}`)}
	if err := s.Validate(bad); err != nil {
		t.Fatalf("an unknown field answered 400: %v", err)
	}
	// The web UI is outside the document.
	if err := s.Validate(Exchange{Method: "GET", URL: "http://h/app.js", Status: 200}); err != nil {
		t.Fatal(err)
	}
}
