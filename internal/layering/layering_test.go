package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/keygate/keygate/"

// layers is, for each package, the module packages it may depend on
// (directly or not) and the third-party module paths it may import
// directly. A package not listed here is not policed, except by
// TestBackendsOnlyInMain.
var layers = map[string]struct{ internal, thirdParty []string }{
	"engine":          {},
	"usagelog":        {},
	"internal/golden": {},
	"store":           {internal: []string{"engine", "usagelog"}},
	"store/badger":    {internal: []string{"store", "engine", "usagelog"}, thirdParty: []string{"github.com/dgraph-io/badger/v4", "github.com/dgraph-io/ristretto/v2", "github.com/klauspost/compress"}},
	"store/postgres":  {internal: []string{"store", "engine", "usagelog"}, thirdParty: []string{"github.com/jackc/pgx/v5"}},
	"keyset":          {internal: []string{"engine", "store", "usagelog"}},
	// The public Go client: the standard library only.
	"client": {},
	// The OpenAPI document, embedded; the server serves it.
	"api":    {thirdParty: []string{"go.yaml.in/yaml/v3"}},
	"server": {internal: []string{"engine", "usagelog", "store", "keyset", "api"}, thirdParty: []string{"github.com/valyala/fasthttp", "github.com/go-json-experiment/json", "github.com/prometheus/client_golang"}},
	// The gRPC transport sits on server's decision step; server never
	// imports gRPC.
	"server/extauthz": {internal: []string{"server", "engine", "usagelog", "store", "keyset", "api"}, thirdParty: []string{"github.com/envoyproxy/go-control-plane/envoy", "google.golang.org/grpc", "google.golang.org/genproto/googleapis/rpc"}},
}

// list runs go list on pkgs with a template that prints one line per
// package.
func list(t *testing.T, format string, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-f", format}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", pkgs, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestLayering keeps the dependencies one-way: engine and usagelog import
// only the standard library; the store contract only those two; the Badger
// backend the contract and Badger, the PostgreSQL one the contract and pgx; keyset the contract and the engine;
// server all of those but never a backend.
func TestLayering(t *testing.T) {
	for pkg, allow := range layers {
		deps := list(t, "{{range .Deps}}{{.}}\n{{end}}", mod+pkg)
		for _, d := range deps {
			if !strings.HasPrefix(d, mod) {
				continue
			}
			if !slices.Contains(allow.internal, strings.TrimPrefix(d, mod)) {
				t.Errorf("%s depends on %s; it may depend only on %v", pkg, d, allow.internal)
			}
		}
		imports := list(t, `{{range .Imports}}{{.}}{{"\n"}}{{end}}`, mod+pkg)
		for _, imp := range imports {
			if imp == "" || strings.HasPrefix(imp, mod) || !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				continue // the module's own, or the standard library
			}
			if !slices.ContainsFunc(allow.thirdParty, func(p string) bool { return imp == p || strings.HasPrefix(imp, p+"/") }) {
				t.Errorf("%s imports %s; its third-party imports may be only %v", pkg, imp, allow.thirdParty)
			}
		}
	}
}

// TestBackendsOnlyInMain: only cmd/keygate wires a concrete store backend
// in; every other package knows the contract alone.
func TestBackendsOnlyInMain(t *testing.T) {
	for _, line := range list(t, `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"...") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		if pkg == "cmd/keygate" || strings.HasPrefix(pkg, "store/") {
			continue
		}
		for _, d := range f[1:] {
			if b := strings.TrimPrefix(d, mod); strings.HasPrefix(b, "store/") && b != "store/storetest" {
				t.Errorf("%s depends on the backend %s; only cmd/keygate may", pkg, b)
			}
		}
	}
}
