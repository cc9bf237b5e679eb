package server

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/api"
	"github.com/keygate/keygate/internal/apispec"
)

// GET /v1/openapi.json serves the document, as JSON, without the admin
// token.
func TestOpenAPIServed(t *testing.T) {
	ts := startServer(t, nil)
	r := do(t, "GET", ts.adminURL+"/v1/openapi.json", nil)
	wantStatus(t, r, http.StatusOK, "openapi.json")
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.Equal(r.body, api.JSON()) {
		t.Error("the body is not api.JSON()")
	}
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	must(t, json.Unmarshal(r.body, &doc))
	if doc.OpenAPI != "3.1.0" || doc.Paths["/v1/keys"] == nil {
		t.Errorf("openapi %q, paths %d", doc.OpenAPI, len(doc.Paths))
	}
}

var allMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}

// Every operation of the document is served (the server does not answer
// "no such endpoint" or 405), and every other method on its paths is a
// 405: the document and the dispatch agree on paths and methods.
// /healthz, /readyz and /metrics answer any method and are documented as
// GET (and HEAD where the UI-free handlers check).
func TestSpecRoutesServed(t *testing.T) {
	spec, err := apispec.Load()
	must(t, err)
	ts := startServer(t, nil)
	for path, item := range spec.Doc.Paths.Map() {
		url := ts.adminURL + strings.NewReplacer("{id}", "key_none", "{entry_id}", "ent_none", "{profile}", "heap").Replace(path)
		ops := item.Operations()
		for _, m := range allMethods {
			_, documented := ops[m]
			if !documented && slices.Contains([]string{"/healthz", "/readyz", "/metrics"}, path) {
				continue // answered for any method
			}
			r := do(t, m, url, nil, "Authorization", "Bearer "+testToken)
			routeMissing := r.status == http.StatusNotFound && m != "HEAD" && strings.Contains(string(r.body), "no such endpoint")
			switch {
			case documented && (routeMissing || r.status == http.StatusMethodNotAllowed):
				t.Errorf("%s %s is in api/openapi.yaml but not served: %d %s", m, path, r.status, r.body)
			case !documented && r.status != http.StatusMethodNotAllowed:
				t.Errorf("%s %s is served (%d) but not in api/openapi.yaml", m, path, r.status)
			}
		}
	}
}

// Every path the server's code names (a "/v1/..." literal, a path part
// compared in the key routes) is in the document, so a new endpoint
// cannot be added without it.
func TestServerRoutesInSpec(t *testing.T) {
	spec, err := apispec.Load()
	must(t, err)
	var paths []string
	segs := map[string]bool{}
	for p := range spec.Doc.Paths.Map() {
		paths = append(paths, p)
		for s := range strings.SplitSeq(p, "/") {
			segs[s] = true
		}
	}
	files, err := filepath.Glob("*.go")
	must(t, err)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		must(t, err)
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(n.Value)
				if err != nil || !strings.HasPrefix(s, "/v1") && s != "/healthz" && s != "/readyz" && s != "/metrics" {
					return true
				}
				if !slices.ContainsFunc(paths, func(p string) bool { return p == s || strings.HasPrefix(p, s+"/") }) {
					t.Errorf("%s: the server routes %q, which api/openapi.yaml does not have", fset.Position(n.Pos()), s)
				}
			case *ast.BinaryExpr:
				// parts[i] == "rotate" in the key routes.
				idx, ok := n.X.(*ast.IndexExpr)
				lit, ok2 := n.Y.(*ast.BasicLit)
				if n.Op != token.EQL || !ok || !ok2 {
					return true
				}
				if id, ok := idx.X.(*ast.Ident); !ok || id.Name != "parts" {
					return true
				}
				if s, _ := strconv.Unquote(lit.Value); !segs[s] {
					t.Errorf("%s: the server routes the path segment %q, which api/openapi.yaml does not have", fset.Position(n.Pos()), s)
				}
			}
			return true
		})
	}
}
