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
