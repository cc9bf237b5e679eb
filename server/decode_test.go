package server

import (
	"strings"
	"testing"
)

// TestStrictBodies: every management body refuses a duplicate field (at
// any depth) and a field that is not spelled exactly as documented, with a
// 400 naming the field, and nothing is applied. encoding/json kept the
// last duplicate and matched names without case, so
// {"allowlist":[{"cidr":"203.0.113.5"}],"allowlist":[]} made an open key.
func TestStrictBodies(t *testing.T) {
	ts := startServer(t, nil)
	id, secret := ts.createKey(t, map[string]any{"name": "k", "scopes": []string{"a"}, "allowlist": []map[string]string{{"cidr": "203.0.113.5", "label": "one"}}})
	al := ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil).json(t)
	ent := al["entries"].([]any)[0].(map[string]any)["id"].(string)
	before := string(ts.admin(t, "GET", "/v1/keys/"+id, nil).body)
	keysBefore := len(ts.admin(t, "GET", "/v1/keys", nil).json(t)["items"].([]any))
	keyPath, listPath, entPath := "/v1/keys", "/v1/keys/"+id+"/allowlist", "/v1/keys/"+id+"/allowlist/"+ent
	tests := []struct {
		method, path, body string
		mention            string
	}{
		// POST /v1/keys
		{"POST", keyPath, `{"name":"x","allowlist":[{"cidr":"203.0.113.5"}],"allowlist":[]}`, `"allowlist" appears more than once`},
		{"POST", keyPath, `{"name":"x","name":"y"}`, `"name" appears more than once`},
		{"POST", keyPath, `{"name":"x","allowlist":[{"cidr":"203.0.113.5","cidr":"0.0.0.0/1"}]}`, `"allowlist[0].cidr" appears more than once`},
		{"POST", keyPath, `{"name":"x","allowlist":[{"CIDR":"203.0.113.5"}]}`, `unknown field "allowlist[0].CIDR"`},
		{"POST", keyPath, `{"Name":"x"}`, `unknown field "Name"`},
		{"POST", keyPath, `{"name":"x","Allowlist":[]}`, `unknown field "Allowlist"`},
		{"POST", keyPath, `{"name":"x","scopes":["a"],"SCOPES":[]}`, `unknown field "SCOPES"`},
		{"POST", keyPath, `{"name":"x","expires_at":"2099-01-01T00:00:00Z","expires_at":null}`, `"expires_at" appears more than once`},
		{"POST", keyPath, `{"name":"x","allowlist":[{"cidr":"203.0.113.5","note":"x"}]}`, `unknown field "allowlist[0].note"`},
		{"POST", keyPath, `{"name":"x","allowlist":[{"cidr":5}]}`, `"allowlist[0].cidr" must be a JSON string`},
		// PATCH /v1/keys/{id}
		{"PATCH", keyPath + "/" + id, `{"allowlist":[{"cidr":"203.0.113.5"}],"allowlist":[]}`, `"allowlist" appears more than once`},
		{"PATCH", keyPath + "/" + id, `{"scopes":["a"],"scopes":[]}`, `"scopes" appears more than once`},
		{"PATCH", keyPath + "/" + id, `{"Scopes":[]}`, `unknown field "Scopes"`},
		{"PATCH", keyPath + "/" + id, `{"allowlist":[{"Cidr":"0.0.0.0/1"}]}`, `unknown field "allowlist[0].Cidr"`},
		{"PATCH", keyPath + "/" + id, `{"allowlist":[{"cidr":"203.0.113.5","label":"a","label":"b"}]}`, `"allowlist[0].label" appears more than once`},
		{"PATCH", keyPath + "/" + id, `{"expires_at":null,"EXPIRES_AT":"2099-01-01T00:00:00Z"}`, `unknown field "EXPIRES_AT"`},
		// PUT /v1/keys/{id}/allowlist
		{"PUT", listPath, `{"entries":[{"cidr":"198.51.100.1"}],"ENTRIES":[]}`, `unknown field "ENTRIES"`},
		{"PUT", listPath, `{"entries":[{"cidr":"198.51.100.1"}],"entries":[]}`, `"entries" appears more than once`},
		{"PUT", listPath, `{"entries":[{"CIDR":"198.51.100.1"}]}`, `unknown field "entries[0].CIDR"`},
		{"PUT", listPath, `{"entries":[{"id":"` + ent + `","id":"x","cidr":"198.51.100.1"}]}`, `"entries[0].id" appears more than once`},
		// POST /v1/keys/{id}/allowlist
		{"POST", listPath, `{"cidr":"198.51.100.1","cidr":"0.0.0.0/1"}`, `"cidr" appears more than once`},
		{"POST", listPath, `{"CIDR":"198.51.100.1"}`, `unknown field "CIDR"`},
		{"POST", listPath, `{"cidr":"198.51.100.1","Label":"x"}`, `unknown field "Label"`},
		// PATCH /v1/keys/{id}/allowlist/{entry}
		{"PATCH", entPath, `{"cidr":"198.51.100.1","cidr":"203.0.113.5"}`, `"cidr" appears more than once`},
		{"PATCH", entPath, `{"label":"x","LABEL":"y"}`, `unknown field "LABEL"`},
		{"PATCH", entPath, `{"Cidr":"0.0.0.0/1"}`, `unknown field "Cidr"`},
	}
	for _, tt := range tests {
		r := ts.admin(t, tt.method, tt.path, tt.body)
		if r.status != 400 || r.errCode(t) != "BAD_REQUEST" {
			t.Errorf("%s %s %s: status %d %s, want 400 BAD_REQUEST", tt.method, tt.path, tt.body, r.status, r.body)
			continue
		}
		if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tt.mention) {
			t.Errorf("%s %s %s: message %q does not say %s", tt.method, tt.path, tt.body, msg, tt.mention)
		}
	}
	if got := string(ts.admin(t, "GET", "/v1/keys/"+id, nil).body); got != before {
		t.Errorf("key changed by refused bodies:\n got %s\nwant %s", got, before)
	}
	if n := len(ts.admin(t, "GET", "/v1/keys", nil).json(t)["items"].([]any)); n != keysBefore {
		t.Errorf("%d keys after refused creates, want %d", n, keysBefore)
	}
	wantStatus(t, ts.check(t, secret, "198.51.100.1", "a"), 403, "check from an address the refused bodies tried to allow")
	wantStatus(t, ts.check(t, secret, "203.0.113.5", "a"), 200, "check from the allowed address")
}
