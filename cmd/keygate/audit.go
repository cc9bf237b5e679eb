package main

import (
	"flag"
	"io"
	"net/url"
	"strings"
)

// auditCmd is `keygate audit`: the key changes (who, when, what), newest
// first, one page (--limit, --cursor) as JSON.
func auditCmd(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	build := clientFlags(fs)
	q := map[string]*string{}
	for _, f := range []struct{ name, usage string }{
		{"key-id", "only the changes of this key"},
		{"from", "only changes at or after this time (RFC 3339, or a date)"},
		{"to", "only changes before this time (RFC 3339, or a date)"},
		{"limit", "changes per page, 1 to 1000 (default 100)"},
		{"cursor", "the next_cursor of the previous page"},
	} {
		q[f.name] = fs.String(f.name, "", f.usage)
	}
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("audit: unexpected argument %q", fs.Arg(0))
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
	path := "/v1/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out any
	if err := c.do("GET", path, nil, &out); err != nil {
		return err
	}
	return printJSON(w, out)
}
