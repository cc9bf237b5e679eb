package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpPrintsUsage(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"serve", "-h"}, {"serve", "--help"}, {"keys", "list", "-h"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Errorf("keygate %v: exit %d, want 0 (stderr %q)", args, code, errOut.String())
		}
		for _, want := range []string{"Usage:", "--max-conns", "--min-free-space", "--log-retention"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("keygate %v: usage lacks %q: %q", args, want, out.String())
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
