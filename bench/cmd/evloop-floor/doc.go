// Command evloop-floor is noop-floor's fixed 200 on an event-loop
// transport instead of fasthttp's goroutine per connection: one
// goroutine, locked to its thread, on one epoll set for the listeners and
// every connection (bench/internal/evloop). It answers every request with
// the same bytes noop-floor does (the Server and Date headers, the JSON
// body of the length of keygate's allowed answer), pipelined requests
// that arrive in one read in one write, and closes after a Connection:
// close or an HTTP/1.0 request. Comparing the two floors' CPU per request
// is the share of it that fasthttp's transport is (BENCHMARKS.md, "An
// event-loop transport").
//
//	evloop-floor -addr 127.0.0.1:8082 -unix /tmp/floor.sock
//	evloop-floor -gnet -addr 127.0.0.1:8082 -unix /tmp/floor.sock
//
// -lock=false -park runs the loop as keygate-evloop does: not locked to
// its thread, parked in the runtime's netpoller when idle, yielding to the
// other goroutines between batches (-lock=false -yield: the same with a
// blocking epoll_wait).
//
// -gnet serves the same answers on gnet v2's event loop instead (one
// loop, github.com/panjf2000/gnet/v2), to compare the hand-written loop
// with a maintained one. Linux only.
package main
