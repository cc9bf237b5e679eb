package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	kgclient "github.com/keygate/keygate/client"
)

// client talks to a running daemon's management API through package
// client (kgclient): the connection, the admin token, error answers as
// *kgclient.Error, 503 retries, the export's row-count check. The
// commands print the daemon's JSON as it wrote it, so most of them use
// its Do; the few that read fields use its typed calls.
type client struct {
	api *kgclient.Client
}

// clientFlags adds the connection flags, and --json, to fs; call build
// after parsing.
func clientFlags(fs *flag.FlagSet) func() (*client, error) {
	srv := fs.String("server", "http://127.0.0.1:8080", "base URL of the daemon's management API (http://host:port; a bare host:port means http; unix:/path/to.sock for an admin socket)")
	tok := fs.String("admin-token", "", "admin token (default: read from the token file in --data)")
	data := fs.String("data", "./data", "data directory whose admin-token file is used when --admin-token is empty")
	fs.Bool("json", false, "print only JSON on standard output, for scripts")
	return func() (*client, error) {
		sock, unix := strings.CutPrefix(*srv, "unix:")
		base, err := "http://localhost", error(nil)
		if unix && sock == "" {
			return nil, usagef("--server %q: a Unix socket needs a path, e.g. unix:/run/keygate/admin.sock", *srv)
		}
		if !unix {
			if base, err = serverURL(*srv); err != nil {
				return nil, err
			}
		}
		t := *tok
		if t == "" {
			b, err := os.ReadFile(filepath.Join(*data, tokenFile))
			if err != nil {
				return nil, usagef("no admin token: pass --admin-token or set KEYGATE_ADMIN_TOKEN (no token file in %s)", *data)
			}
			t = strings.TrimSpace(string(b))
		}
		// No overall timeout: an export streams for as long as it makes
		// progress. The daemon must answer within 30 s, and the body's
		// progress is bounded by the daemon's write timeout.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 30 * time.Second
		if unix {
			tr.Proxy = nil
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}
		}
		api, err := kgclient.New(base, t, kgclient.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			return nil, err
		}
		return &client{api: api}, nil
	}
}

// jsonOutput reports whether --json was given.
func jsonOutput(fs *flag.FlagSet) bool {
	f := fs.Lookup("json")
	return f != nil && f.Value.String() == "true"
}

// serverURL reads --server: a URL with scheme http or https, or a bare
// host:port (http).
func serverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("--server %q: want the daemon's address, e.g. http://127.0.0.1:8080 or 127.0.0.1:8080", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// do sends one request and decodes a JSON answer into out (unless nil).
func (c *client) do(method, path string, in, out any) error {
	return c.api.Do(context.Background(), method, path, in, out)
}

// send sends one request and returns a 2xx response for the caller to
// read and close; anything else is a *kgclient.Error.
func (c *client) send(method, path string, in any) (*http.Response, error) {
	return c.api.Send(context.Background(), method, path, in)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// storedEntry is an allowlist entry as the management API shows it.
type storedEntry struct{ ID, CIDR string }

// entryWithPrefix returns the id of the entry whose prefix is arg's: an
// address or a CIDR in any spelling the server accepts (2001:DB8::1,
// 2001:db8::1/128 and 2001:0db8::1 are one entry), or "" if none is.
func entryWithPrefix(entries []storedEntry, arg string) string {
	want, err := netip.ParsePrefix(arg)
	if err != nil {
		a, aerr := netip.ParseAddr(arg)
		if aerr != nil {
			return ""
		}
		want = netip.PrefixFrom(a, a.BitLen())
	}
	want = unmapPrefix(want).Masked()
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e.CIDR); err == nil && unmapPrefix(p).Masked() == want {
			return e.ID
		}
	}
	return ""
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/n) into
// its IPv4 form.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// entryArg parses "CIDR" or "CIDR=LABEL".
func entryArg(s string) map[string]string {
	cidr, label, _ := strings.Cut(s, "=")
	return map[string]string{"cidr": strings.TrimSpace(cidr), "label": label}
}

func keysCmd(args []string, w io.Writer) error {
	if len(args) == 0 {
		return usagef("keys: want create, list, show, update, rotate or revoke")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	build := clientFlags(fs)
	switch args[0] {
	case "create":
		return keysCreate(fs, build, args[1:], w)
	case "list":
		return keysList(fs, build, args[1:], w)
	case "show", "revoke":
		return keysShowOrRevoke(fs, build, args[0], args[1:], w)
	case "update":
		return keysUpdate(fs, build, args[1:], w)
	case "rotate":
		return keysRotate(fs, build, args[1:], w)
	}
	return usagef("keys: unknown subcommand %q: want create, list, show, update, rotate or revoke", args[0])
}

// keysCreate is `keygate keys create`: it prints the new key, secret
// included, once.
func keysCreate(fs *flag.FlagSet, build func() (*client, error), args []string, w io.Writer) error {
	name := fs.String("name", "", "key name (required)")
	desc := fs.String("description", "", "description")
	expires := fs.String("expires", "", "expiry time, RFC 3339")
	reportOnly := fs.Bool("report-only", false, "log what the allowlist would block instead of blocking")
	var scopes listFlag
	var allow repeatFlag
	fs.Var(&scopes, "scope", "scope the key grants (repeatable, or comma-separated)")
	fs.Var(&allow, "allow", "allowlist entry CIDR or CIDR=LABEL (repeatable)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	body := map[string]any{"name": *name, "description": *desc, "scopes": []string(scopes), "report_only": *reportOnly}
	entries := []map[string]string{}
	for _, a := range allow {
		entries = append(entries, entryArg(a))
	}
	body["allowlist"] = entries
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return usagef("--expires %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", *expires)
		}
		body["expires_at"] = t
	}
	var out map[string]any
	if err := c.do("POST", "/v1/keys", body, &out); err != nil {
		return err
	}
	if err := printJSON(w, out); err != nil || jsonOutput(fs) {
		return err
	}
	_, err = fmt.Fprintf(w, "\nThe secret above is shown only this once: store it now.\n")
	return err
}

// keysList is `keygate keys list`: one line per key.
func keysList(fs *flag.FlagSet, build func() (*client, error), args []string, w io.Writer) error {
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	if jsonOutput(fs) {
		var raw any
		if err := c.do("GET", "/v1/keys", nil, &raw); err != nil {
			return err
		}
		return printJSON(w, raw)
	}
	keys, err := c.api.ListKeys(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tHINT\tSCOPES\tALLOWLIST\tCREATED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s…\t%s\t%d\t%s\n", k.ID, k.Name, k.Status, k.Hint, strings.Join(k.Scopes, ","), len(k.Allowlist), k.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// keysShowOrRevoke is `keygate keys show|revoke ID`.
func keysShowOrRevoke(fs *flag.FlagSet, build func() (*client, error), sub string, args []string, w io.Writer) error {
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("keys %s: want exactly one key id", sub)
	}
	c, err := build()
	if err != nil {
		return err
	}
	method := "GET"
	if sub == "revoke" {
		method = "DELETE"
	}
	var out map[string]any
	if err := c.do(method, "/v1/keys/"+url.PathEscape(fs.Arg(0)), nil, &out); err != nil {
		return err
	}
	return printJSON(w, out)
}

func allowlistCmd(args []string, w io.Writer) error {
	if len(args) == 0 {
		return usagef("allowlist: want list, add, remove, replace or import")
	}
	fs := flag.NewFlagSet("allowlist "+args[0], flag.ContinueOnError)
	build := clientFlags(fs)
	label := fs.String("label", "", "label of the entry (add)")
	allowAll := fs.Bool("allow-all", false, "replace: confirm an empty allowlist, which lets the key in from every address")
	expires := fs.String("expires", "", "add: the entry stops matching at this RFC 3339 time, or after this duration (3h)")
	disabled := fs.Bool("disabled", false, "add: keep the entry listed but matching nothing")
	replace := fs.Bool("replace", false, "import: replace the list instead of adding to it")
	dryRun := fs.Bool("dry-run", false, "import: show what the list would change, save nothing")
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("allowlist %s: want a key id", args[0])
	}
	c, err := build()
	if err != nil {
		return err
	}
	base := "/v1/keys/" + url.PathEscape(rest[0]) + "/allowlist"
	var out any
	switch args[0] {
	case "list":
		err = c.do("GET", base, nil, &out)
	case "add":
		if len(rest) != 2 {
			return usagef("allowlist add: want KEY_ID CIDR")
		}
		e := map[string]any{}
		for k, v := range entryArg(rest[1]) {
			e[k] = v
		}
		if *label != "" {
			e["label"] = *label
		}
		if *expires != "" {
			t, err := expiresArg(*expires, time.Now())
			if err != nil {
				return err
			}
			e["expires_at"] = t
		}
		if *disabled {
			e["disabled"] = true
		}
		err = c.do("POST", base, e, &out)
	case "remove":
		if len(rest) != 2 {
			return usagef("allowlist remove: want KEY_ID ENTRY_ID|CIDR")
		}
		id := rest[1]
		if !strings.HasPrefix(id, "ent_") {
			// Find the entry by its address or range.
			cur, err := c.api.GetAllowlist(context.Background(), rest[0])
			if err != nil {
				return err
			}
			entries := make([]storedEntry, len(cur.Entries))
			for i, e := range cur.Entries {
				entries[i] = storedEntry{e.ID, e.CIDR}
			}
			if id = entryWithPrefix(entries, rest[1]); id == "" {
				return fmt.Errorf("key %s has no allowlist entry %s", rest[0], rest[1])
			}
		}
		err = c.do("DELETE", base+"/"+url.PathEscape(id), nil, &out)
	case "replace":
		if len(rest) == 1 && !*allowAll {
			return usagef("allowlist replace %s: no entries would let the key in from every address: name the entries, or pass --allow-all to mean it", rest[0])
		}
		entries := []map[string]string{}
		for _, a := range rest[1:] {
			entries = append(entries, entryArg(a))
		}
		err = c.do("PUT", base, map[string]any{"entries": entries}, &out)
	case "import":
		if len(rest) != 2 {
			return usagef("allowlist import: want KEY_ID FILE (- for standard input)")
		}
		return allowlistImport(c, rest[0], rest[1], *replace, *dryRun, w)
	default:
		return usagef("allowlist: unknown subcommand %q: want list, add, remove, replace or import", args[0])
	}
	if err != nil {
		return err
	}
	return printJSON(w, out)
}

func logsCmd(args []string, w io.Writer) error {
	if len(args) == 0 || (args[0] != "query" && args[0] != "export") {
		return usagef("logs: want query or export")
	}
	fs := flag.NewFlagSet("logs "+args[0], flag.ContinueOnError)
	build := clientFlags(fs)
	q := map[string]*string{}
	for _, f := range []struct{ name, usage string }{
		{"key-id", "only the records of this key"},
		{"method", "only this HTTP method"},
		{"status", "only this status (403) or class (4xx)"},
		{"code", "only this error code (IP_NOT_ALLOWED, INVALID_KEY, INSUFFICIENT_SCOPE, BAD_REQUEST) or none"},
		{"ip", "only the records of this client address (exact; v4-mapped is v4)"},
		{"path-prefix", "only the records whose path begins with this"},
		{"from", "only records at or after this time (RFC 3339, or a date)"},
		{"to", "only records before this time (RFC 3339, or a date)"},
		{"limit", "query: records per page, 1 to 1000"},
		{"cursor", "query: the next_cursor of the previous page"},
	} {
		q[f.name] = fs.String(f.name, "", f.usage)
	}
	outPath := fs.String("o", "", "export: write the CSV to this file instead of standard output")
	force := fs.Bool("force", false, "export: overwrite the -o file if it exists")
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if args[0] == "export" && (*q["limit"] != "" || *q["cursor"] != "") {
		return usagef("logs export: --limit and --cursor page a query; an export writes every matching record (narrow it with the filters, or use logs query)")
	}
	c, err := build()
	if err != nil {
		return err
	}
	v := url.Values{}
	for name, p := range q {
		if *p != "" {
			v.Set(strings.ReplaceAll(name, "-", "_"), *p)
		}
	}
	qs := ""
	if len(v) > 0 {
		qs = "?" + v.Encode()
	}
	if args[0] == "query" {
		var out any
		if err := c.do("GET", "/v1/logs"+qs, nil, &out); err != nil {
			return err
		}
		return printJSON(w, out)
	}
	res, err := c.send("GET", "/v1/logs/export.csv"+qs, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if jsonOutput(fs) && *outPath == "" {
		return usagef("logs export --json: the CSV goes to -o FILE, and standard output gets {\"rows\": N, \"file\": FILE}")
	}
	dst := w
	if *outPath != "" {
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if *force {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		f, err := os.OpenFile(*outPath, flags, 0o600)
		if errors.Is(err, iofs.ErrExist) {
			return usagef("logs export: %s exists: pass --force to overwrite it", *outPath)
		}
		if err != nil {
			return err
		}
		defer f.Close()
		dst = f
	}
	// CopyExport checks the row count the daemon confirms in its
	// trailer after the last row.
	rows, err := kgclient.CopyExport(dst, res)
	if err != nil {
		return err
	}
	if f, ok := dst.(*os.File); ok && *outPath != "" {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if jsonOutput(fs) {
		return printJSON(w, map[string]any{"rows": rows, "file": *outPath})
	}
	return nil
}
