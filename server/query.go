package server

import (
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// The query parameters of the log endpoints: the filters, which the CSV
// export takes too, and a page's.
var (
	logFilterParams = []string{"key_id", "method", "status", "code", "ip", "path_prefix", "from", "to"}
	logPageParams   = append(slices.Clip(logFilterParams), "limit", "cursor")
)

// checkQuery checks a management request's query string against the
// parameters its endpoint takes, before the request is acted on. A
// parameter the endpoint does not take would be ignored: a misspelt
// filter would widen a query or an export, a dry_run on a route without
// one would write. A parameter given twice is ambiguous: a proxy, a
// framework and keygate may each take another of its values. One with no
// value (?dry_run, ?key_id=) would be read as absent; only cursor may be
// empty (the first page). Each is a 400 that names the parameter and
// says what the endpoint takes. Names are exact: Status is not status.
func checkQuery(ctx *fasthttp.RequestCtx, takes ...string) error {
	args := ctx.QueryArgs()
	if args.Len() == 0 {
		return nil
	}
	var unknown, twice, empty, seen []string
	for k, v := range args.All() {
		name := string(k)
		if len(v) == 0 && name != "cursor" && !slices.Contains(empty, name) {
			empty = append(empty, name)
		}
		switch {
		case !slices.Contains(takes, name):
			if !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
		case slices.Contains(seen, name):
			if !slices.Contains(twice, name) {
				twice = append(twice, name)
			}
		default:
			seen = append(seen, name)
		}
	}
	var problems []string
	if len(unknown) > 0 {
		what := "it takes no query parameters"
		if len(takes) > 0 {
			what = "it takes " + strings.Join(takes, ", ")
		}
		problems = append(problems, string(ctx.Method())+" "+string(ctx.Path())+" does not take "+quoteList(unknown)+": "+what)
	}
	for _, name := range twice {
		problems = append(problems, "query parameter "+strconv.Quote(name)+" is given more than once: give it once")
	}
	for _, name := range empty {
		if slices.Contains(takes, name) {
			problems = append(problems, "query parameter "+strconv.Quote(name)+" has no value: give it one, or leave it out")
		}
	}
	if len(problems) > 0 {
		return errorf(ErrBadRequest, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// quoteList is names quoted and joined with commas.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
