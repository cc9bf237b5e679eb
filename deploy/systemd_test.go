package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/daemontest"
)

// systemdAnalyze is systemd's unit checker, from Debian's systemd package
// (installed by .ci/run). Its absence fails the test.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: install Debian's systemd package (.ci/run does)")
	}
	return p
}

// unitSettings reads a unit file's [Service] section: every value of
// each key, in order.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, line)
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestSystemdUnit: deploy/systemd/keygate.service has the hardening
// deploy/README.md promises, passes `systemd-analyze verify` (with
// ExecStart pointing at the built binary: verify insists the binary
// exists), scores at most 1.5 in `systemd-analyze security --offline`
// (0 is locked down, 10 unprotected), and its ExecStart line starts the
// real daemon.
func TestSystemdUnit(t *testing.T) {
	const unit = "systemd/keygate.service"
	s := unitSettings(t, unit)
	for k, want := range map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "keygate",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallArchitectures": "native",
		"KillSignal":              "SIGTERM",
		"Type":                    "notify", // cmd/keygate TestSystemdNotify
	} {
		if got := s[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if !slices.Contains(s["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%q, want @system-service", s["SystemCallFilter"])
	}
	if len(s["ExecStart"]) != 1 {
		t.Fatalf("ExecStart=%q", s["ExecStart"])
	}
	args := strings.Fields(s["ExecStart"][0])
	const bin = "/usr/local/bin/keygate"
	if args[0] != bin || args[1] != "serve" || !strings.Contains(s["ExecStart"][0], " --log-format json") {
		t.Fatalf("ExecStart %q: want %s serve ... --log-format json", s["ExecStart"][0], bin)
	}

	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "keygate.service")
	if err := os.WriteFile(local, []byte(strings.ReplaceAll(string(b), bin, keygateBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	sa := systemdAnalyze(t)
	if out, err := exec.Command(sa, "verify", local).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=15", local).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 1.5: %v\n%s", err, out)
	}

	// The ExecStart line, addresses and state directory swapped for the
	// test's, starts the daemon.
	data := filepath.Join(t.TempDir(), "state")
	flags := strings.NewReplacer("${STATE_DIRECTORY}", data,
		"127.0.0.1:8080", daemontest.FreeAddr(t), "127.0.0.1:8081", daemontest.FreeAddr(t)).Replace(strings.Join(args[2:], " "))
	d := daemontest.Start(t, keygateBin, daemontest.Options{
		Data: data, AdminToken: adminToken, Args: strings.Fields(flags),
		StartTimeout: 15 * time.Second, ReadyPath: "/readyz", StopTimeout: 5 * time.Second, Graceful: true,
	})
	if err := d.Stop(); err != nil {
		t.Errorf("stop: %v\n%s", err, d.Output())
	}
}
