package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpPrintsUsage(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"serve", "-h"}, {"serve", "--help"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Errorf("keygate %v: exit %d, want 0 (stderr %q)", args, code, errOut.String())
		}
		for _, want := range []string{"Usage:", "--max-conns", "--min-free-space", "--log-retention", "Exit status"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("keygate %v: usage lacks %q: %q", args, want, out.String())
			}
		}
		if strings.Contains(out.String(), "maintenance-interval") {
			t.Errorf("keygate %v: a hidden flag is listed", args)
		}
	}
	// Every command and subcommand: help on standard output, exit 0, its
	// flags listed.
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"keys", "-h"}, []string{"keygate keys create"}},
		{[]string{"allowlist", "-h"}, []string{"allowlist replace"}},
		{[]string{"logs", "--help"}, []string{"logs export"}},
		{[]string{"keys", "list", "-h"}, []string{"--server", "--json", "--admin-token"}},
		{[]string{"keys", "create", "-h"}, []string{"--name", "--scope", "--allow", "--expires"}},
		{[]string{"allowlist", "replace", "-h"}, []string{"--allow-all"}},
		{[]string{"logs", "export", "-h"}, []string{"--status", "--force", "-o"}},
		{[]string{"audit", "-h"}, []string{"--key-id", "--from", "--cursor"}},
	} {
		var out, errOut bytes.Buffer
		if code := run(tt.args, &out, &errOut); code != 0 {
			t.Errorf("keygate %v: exit %d, want 0 (stderr %q)", tt.args, code, errOut.String())
		}
		for _, want := range tt.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("keygate %v: help lacks %q: %q", tt.args, want, out.String())
			}
		}
	}
}

func TestProcs(t *testing.T) {
	tests := []struct {
		current int
		env     string
		want    int
	}{
		{1, "", 2}, // one CPU: a second P so the log writer never stalls checks
		{2, "", 2},
		{8, "", 8},
		{1, "1", 1}, // an explicit GOMAXPROCS wins
		{4, "4", 4},
	}
	for _, tt := range tests {
		if got := procs(tt.current, tt.env); got != tt.want {
			t.Errorf("procs(%d, %q) = %d, want %d", tt.current, tt.env, got, tt.want)
		}
	}
}
