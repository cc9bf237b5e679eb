package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	kgclient "github.com/keygate/keygate/client"
)

// The allowlist-lifecycle subcommands: keys update and rotate, and
// allowlist import; and the --expires/--disabled flags of allowlist add.

// keysUpdate is `keygate keys update ID [--report-only=BOOL] [--name N] [--description D]`.
func keysUpdate(fs *flag.FlagSet, build func() (*client, error), args []string, w io.Writer) error {
	name := fs.String("name", "", "new name")
	desc := fs.String("description", "", "new description")
	reportOnly := fs.Bool("report-only", false, "log what the allowlist would block instead of blocking (--report-only=false enforces it)")
	set, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("keys update: want exactly one key id")
	}
	body := map[string]any{}
	if set["name"] {
		body["name"] = *name
	}
	if set["description"] {
		body["description"] = *desc
	}
	if set["report-only"] {
		body["report_only"] = *reportOnly
	}
	if len(body) == 0 {
		return usagef("keys update: nothing to change: give --report-only, --name or --description")
	}
	c, err := build()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.do("PATCH", "/v1/keys/"+url.PathEscape(fs.Arg(0)), body, &out); err != nil {
		return err
	}
	return printJSON(w, out)
}

// keysRotate is `keygate keys rotate ID --overlap 24h`: it prints the key
// with its new secret, once.
func keysRotate(fs *flag.FlagSet, build func() (*client, error), args []string, w io.Writer) error {
	overlap := fs.String("overlap", "", "how long the old secret keeps working: a duration from 0s to 168h (required)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("keys rotate: want exactly one key id")
	}
	if *overlap == "" {
		return usagef("keys rotate: --overlap is required (e.g. --overlap 24h, or 0s to stop the old secret at once)")
	}
	c, err := build()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.do("POST", "/v1/keys/"+url.PathEscape(fs.Arg(0))+"/rotate", map[string]any{"overlap": *overlap}, &out); err != nil {
		return err
	}
	if err := printJSON(w, out); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\nThe new secret above is shown only this once: store it now. The old one works until %v.\n",
		out["previous_secret"].(map[string]any)["expires_at"])
	return err
}

// expiresArg reads --expires: an RFC 3339 time or a duration from now.
func expiresArg(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	return time.Time{}, usagef("--expires %q: want an RFC 3339 time (2030-01-02T15:04:05Z) or a duration from now (3h)", s)
}

// importLine is one entry of an import file.
type importLine struct {
	n           int // line number, from 1
	cidr, label string
}

// parseImport reads one entry per line: "address", "address,label" or
// "address label"; blank lines and lines starting with # are skipped.
func parseImport(r io.Reader) ([]importLine, error) {
	var out []importLine
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cidr, label, found := strings.Cut(line, ",")
		if !found {
			cidr, label, _ = strings.Cut(line, " ")
		}
		out = append(out, importLine{n: n, cidr: strings.TrimSpace(cidr), label: strings.TrimSpace(label)})
	}
	return out, sc.Err()
}

// allowlistImport is `keygate allowlist import KEY FILE [--replace] [--dry-run]`:
// the file's entries are added to the key's list (or replace it) in one
// atomic PUT, after a dry run that names every refused line; nothing is
// saved when a line is refused.
func allowlistImport(c *client, key, file string, replace, dryRun bool, w io.Writer) error {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	lines, err := parseImport(r)
	if err != nil {
		return err
	}
	base := "/v1/keys/" + url.PathEscape(key) + "/allowlist"
	var entries []map[string]any
	if !replace {
		var cur struct {
			Entries []map[string]any `json:"entries"`
		}
		if err := c.do("GET", base, nil, &cur); err != nil {
			return err
		}
		for _, e := range cur.Entries {
			keep := map[string]any{"id": e["id"], "cidr": e["cidr"], "label": e["label"]}
			if e["expires_at"] != nil {
				keep["expires_at"] = e["expires_at"]
			}
			if e["disabled"] == true {
				keep["disabled"] = true
			}
			entries = append(entries, keep)
		}
	}
	first := len(entries)
	for _, l := range lines {
		entries = append(entries, map[string]any{"cidr": l.cidr, "label": l.label})
	}
	if entries == nil {
		entries = []map[string]any{}
	}
	body := map[string]any{"entries": entries}
	var impact map[string]any
	if err := c.do("PUT", base+"?dry_run=true", body, &impact); err != nil {
		var ae *kgclient.Error
		if !errors.As(err, &ae) || len(ae.Details) == 0 {
			return err
		}
		fmt.Fprintf(w, "Nothing was imported: %d problem(s).\n", len(ae.Details))
		for _, d := range ae.Details {
			if d.Index >= first && d.Index-first < len(lines) {
				l := lines[d.Index-first]
				fmt.Fprintf(w, "  line %d %q (%s): %s\n", l.n, l.cidr, d.Rule, d.Message)
			} else {
				fmt.Fprintf(w, "  existing entry %d %q (%s): %s\n", d.Index+1, d.Input, d.Rule, d.Message)
			}
		}
		return fmt.Errorf("%s: %d line(s) refused", file, len(ae.Details))
	}
	nb, _ := impact["newly_blocked"].(map[string]any)
	fmt.Fprintf(w, "%d entries; on the last 24 h of traffic this newly blocks %v requests from %v addresses.\n",
		len(entries), nb["requests"], nb["addresses"])
	if dryRun {
		return printJSON(w, impact)
	}
	var out any
	if err := c.do("PUT", base, body, &out); err != nil {
		return err
	}
	return printJSON(w, out)
}
