package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// timedProfile is a profile that runs for ?seconds= before it is written.
type timedProfile struct {
	what             string // for the 409
	file             string // the attachment's name
	defSecs, maxSecs int    // the default (net/http/pprof's) and the longest run
	start            func(io.Writer) error
	stop             func()
}

var timedProfiles = map[string]timedProfile{
	"profile": {"a CPU profile", "keygate-profile.pprof", 30, 120, pprof.StartCPUProfile, pprof.StopCPUProfile},
	"trace":   {"an execution trace", "keygate.trace", 1, 60, trace.Start, trace.Stop},
}

// debugProfiles are the runtime's named profiles, written at once. block
// and mutex stay empty: keygate leaves their sampling rates at 0, as
// sampling them costs on every contended lock.
var debugProfiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// handleDebug serves GET /debug/pprof/{profile}, net/http/pprof's paths,
// which tooling and people expect: "profile" (CPU, for
// ?seconds=), "trace" (an execution trace, for ?seconds=) or one of
// debugProfiles (?debug=1 or 2 for text). Profiles hold code locations
// and counts, never request data, but they cost CPU while they run and
// show the code's layout, so they need the admin token like the rest of
// management.
func (s *Server) handleDebug(ctx *fasthttp.RequestCtx) {
	if !s.admitted(ctx) || !allowGet(ctx, false) {
		return
	}
	name := strings.TrimPrefix(strings.TrimPrefix(string(ctx.Path()), "/debug/pprof"), "/")
	args := ctx.QueryArgs()
	tp, timed := timedProfiles[name]
	named := slices.Contains(debugProfiles, name)
	if timed || named {
		// A parameter this profile does not take would be silently
		// ignored (net/http/pprof's heap?seconds= is a delta profile,
		// which this is not): refused, naming what it takes.
		takes := "debug"
		if timed {
			takes = "seconds"
		}
		if err := checkQuery(ctx, takes); err != nil {
			writeError(ctx, err)
			return
		}
	}
	switch {
	case timed:
		s.serveTimedProfile(ctx, name, tp, args)
	case named:
		debug, err := queryInt(args, "debug", 0, 0, 2, "0 (pprof's binary format, the default), 1 or 2 (text)")
		if err != nil {
			writeError(ctx, err)
			return
		}
		setProfileHeaders(ctx, "keygate-"+name+".pprof", debug > 0)
		p := pprof.Lookup(name)
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			if err := p.WriteTo(w, debug); err != nil {
				s.log.Warn("debug profile failed", "profile", name, "err", err)
			}
		})
	default:
		writeError(ctx, errorf(ErrNotFound, "no profile %q: choose profile (CPU, ?seconds=), trace (?seconds=) or one of %s", name, strings.Join(debugProfiles, ", ")))
	}
}

// serveTimedProfile runs the CPU profile or the execution trace for the
// requested seconds and streams it. Only one of each can run in the
// process: a second request meanwhile gets 409. The profile ends early,
// shorter but whole, when the server begins to shut down.
func (s *Server) serveTimedProfile(ctx *fasthttp.RequestCtx, name string, tp timedProfile, args *fasthttp.Args) {
	secs, err := queryInt(args, "seconds", tp.defSecs, 1, tp.maxSecs, fmt.Sprintf("a whole number of seconds from 1 to %d (default %d)", tp.maxSecs, tp.defSecs))
	if err != nil {
		writeError(ctx, err)
		return
	}
	pr, pw := io.Pipe()
	if err := tp.start(pw); err != nil {
		writeError(ctx, errorf(ErrConflict, "%s is already running in this process (%v): wait for it to end, then ask again", tp.what, err))
		return
	}
	// The profile runs from now, whether or not anyone reads it: it is
	// stopped after secs (or when the shutdown begins), and what
	// it writes is read to its end below either way.
	go func() {
		t := time.NewTimer(time.Duration(secs) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.stopping.Done():
		}
		tp.stop()
		pw.Close()
	}()
	setProfileHeaders(ctx, tp.file, false)
	dw := &deadlineWriter{conn: ctx.Conn(), timeout: s.cfg.WriteTimeout}
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		dw.w = w
		_, err := io.Copy(dw, pr)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			// The client went away: the profile still runs to its end,
			// so that the next one can start; drop what it writes.
			io.Copy(io.Discard, pr)
			if !errors.Is(err, fasthttputil.ErrConnectionClosed) {
				s.log.Warn("debug profile not delivered", "profile", name, "err", err)
			}
		}
	})
}

// queryInt reads the integer query parameter name, def when absent; a
// value outside lo..hi or not a number is a 400 that says what is
// wanted. checkQuery has refused the parameter given twice.
func queryInt(args *fasthttp.Args, name string, def, lo, hi int, want string) (int, error) {
	if !args.Has(name) {
		return def, nil
	}
	v := args.Peek(name)
	n, err := strconv.Atoi(string(v))
	if err != nil || n < lo || n > hi {
		return 0, errorf(ErrBadRequest, "%s %q: want %s", name, v, want)
	}
	return n, nil
}

// setProfileHeaders marks a profile's answer: text, or a binary
// attachment named file.
func setProfileHeaders(ctx *fasthttp.RequestCtx, file string, text bool) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	if text {
		ctx.SetContentType("text/plain; charset=utf-8")
		return
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+file+`"`)
}
