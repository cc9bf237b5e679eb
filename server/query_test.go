package server

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/apispec"
)

// Every management operation takes exactly the query parameters that
// api/openapi.yaml lists for it. An unlisted one (a misspelling, another
// case, a dry_run where there is none), a listed one given twice and one
// with no value are 400s that name it, before the request does anything: the key, its
// allowlist and the audit log are as they were. A listed one is never
// refused as unknown.
func TestQueryParamsAsDocumented(t *testing.T) {
	spec, err := apispec.Load()
	must(t, err)
	ts := startServer(t, nil)
	id, _ := ts.createKey(t, map[string]any{"name": "query", "allowlist": []map[string]string{{"cidr": "203.0.113.0/24", "label": "office"}}})
	before := ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil)
	entryID := before.json(t)["entries"].([]any)[0].(map[string]any)["id"].(string)

	// The check path, health and metrics are not management;
	// /debug/pprof's parameters depend on the profile (TestDebugProfiles).
	skip := []string{"/v1/check", "/v1/authz", "/healthz", "/readyz", "/metrics", "/debug/pprof/{profile}"}
	ops := 0
	for path, item := range spec.Doc.Paths.Map() {
		if slices.Contains(skip, path) {
			continue
		}
		url := ts.adminURL + strings.NewReplacer("{id}", id, "{entry_id}", entryID).Replace(path)
		for m, op := range item.Operations() {
			if m == http.MethodHead {
				continue // a HEAD's answer has no body to name the parameter
			}
			ops++
			var listed []string
			for _, p := range slices.Concat(item.Parameters, op.Parameters) {
				if p.Value.In == "query" {
					listed = append(listed, p.Value.Name)
				}
			}
			refused := func(query, names, why string) {
				t.Helper()
				r := do(t, m, url+"?"+query, map[string]any{}, "Authorization", "Bearer "+testToken)
				msg := ""
				if r.status == http.StatusBadRequest {
					msg, _ = r.json(t)["error"].(map[string]any)["message"].(string)
				}
				if r.status != http.StatusBadRequest || !strings.Contains(msg, names) || !strings.Contains(msg, why) {
					t.Errorf("%s %s?%s: %d %s; want 400 naming %s (%s)", m, path, query, r.status, r.body, names, why)
				}
			}
			refused("zz_unknown=1", `"zz_unknown"`, "does not take")
			refused("dry_run=true&zz=1&zz=2", `"zz"`, "does not take")
			for _, p := range listed {
				refused(p+"=x&"+p+"=y", `"`+p+`"`, "more than once")
				refused(strings.ToUpper(p)+"=x", `"`+strings.ToUpper(p)+`"`, "does not take")
				// No value, with or without "=": not read as absent
				// (but an empty cursor is the first page).
				if p != "cursor" {
					refused(p, `"`+p+`"`, "no value")
					refused(p+"=", `"`+p+`"`, "no value")
				} else if r := do(t, m, url+"?cursor=", nil, "Authorization", "Bearer "+testToken); r.status != http.StatusOK {
					t.Errorf("%s %s?cursor=: %d %s, want the first page", m, path, r.status, r.body)
				}
				r := do(t, m, url+"?"+p+"=x", map[string]any{}, "Authorization", "Bearer "+testToken)
				if strings.Contains(string(r.body), "does not take") || strings.Contains(string(r.body), "more than once") {
					t.Errorf("%s %s?%s=x: the listed parameter is refused: %d %s", m, path, p, r.status, r.body)
				}
			}
			if !slices.Contains(listed, "dry_run") {
				// dry_run where there is none would otherwise write.
				r := do(t, m, url+"?dry_run=true", map[string]any{}, "Authorization", "Bearer "+testToken)
				wantStatus(t, r, http.StatusBadRequest, m+" "+path+"?dry_run=true")
			}
		}
	}
	if ops < 15 {
		t.Fatalf("only %d management operations in the document", ops)
	}

	// Nothing was done: the key is active, its list as it was, and the
	// audit log has its creation alone.
	k := ts.admin(t, "GET", "/v1/keys/"+id, nil)
	wantStatus(t, k, http.StatusOK, "the key")
	if st := k.json(t)["status"]; st != "active" {
		t.Errorf("key status %v after refused requests", st)
	}
	if after := ts.admin(t, "GET", "/v1/keys/"+id+"/allowlist", nil); string(after.body) != string(before.body) {
		t.Errorf("allowlist changed by refused requests:\n%s\n%s", before.body, after.body)
	}
	audit := ts.admin(t, "GET", "/v1/audit?key_id="+id, nil)
	if n := len(audit.json(t)["items"].([]any)); n != 1 {
		t.Errorf("%d audit entries after refused requests, want the creation alone: %s", n, audit.body)
	}
}
