package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the dependencies one-way: engine imports only the
// standard library; store imports engine but not server; server imports
// engine but never a store implementation.
func TestLayering(t *testing.T) {
	const mod = "github.com/keygate/keygate/"
	deps := func(pkg string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, d := range deps("engine") {
		if d != mod+"engine" {
			t.Errorf("engine depends on %s; it may import only the standard library", d)
		}
	}
	forbidden := map[string][]string{
		"store":  {mod + "server", mod + "cmd/"},
		"server": {mod + "store", mod + "cmd/"},
	}
	for pkg, bad := range forbidden {
		for _, d := range deps(pkg) {
			for _, b := range bad {
				if strings.HasPrefix(d, b) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
