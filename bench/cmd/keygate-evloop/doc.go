// Command keygate-evloop is keygate's real check path on the event-loop
// transport of bench/internal/evloop, for measuring what that transport
// would save per check (BENCHMARKS.md, "An event-loop transport"). It is
// a benchmark, not a daemon to deploy.
//
//	keygate-evloop serve --addr unix:/tmp/kg.sock --admin-addr 127.0.0.1:8081 --data DIR \
//	  --admin-token TOKEN --trusted-proxies 127.0.0.1/32,unix
//
// It opens the Badger store in --data the way keygate serve does, builds
// the same server.Server over it and answers the check listener (--addr)
// with Server.CheckHandler, the fasthttp.RequestHandler keygate serve
// runs there: per connection one fasthttp.RequestCtx, each request parsed
// by fasthttp's own parser from the bytes the loop read, the handler
// called, the response written with fasthttp's Response.Write into the
// connection's output. Everything else is keygate's own: Server.Serve
// runs the admin listener (health, metrics), the change poller and the
// shutdown, with a check listener that never accepts, and the store is
// flushed and closed at the end as serve does. The flags are serve's, for
// bench/ab.sh; --admin-addr is required (the check handler then serves
// the check path and health only, nothing streamed).
//
// The loop parks in the runtime's netpoller when it has nothing to do
// and yields between batches (evloop.Options.Park), so that the usage-log
// writer gets the P with GOMAXPROCS=1; -park=false -yield blocks in
// epoll_wait instead, and -lock (locked thread, never yielding) starves
// the writer, which then drops records.
//
// What it does not have of fasthttp's server is listed in BENCHMARKS.md:
// no per-request read/write deadlines (a 1 s sweep closes idle, stalled
// and slow connections instead), no connection limit, no shutdown drain
// of the check connections, keygate's own error bodies for unparsable
// requests replaced by like ones of its own (server's ErrorHandler is
// not exported).
package main
