// Package evloop is a minimal HTTP/1.1 transport for the benchmarks: one
// goroutine waits on one Linux epoll set for every listener and
// connection (level-triggered), reads once per readiness into the
// connection's buffer, hands the bytes to a Handler that answers every
// complete request in them (pipelined ones too), and writes the answers
// in one write; on a short write it waits for EPOLLOUT and reads nothing
// more from that connection until the answers are out. There is no
// goroutine per connection: nothing parks or is woken per connection.
//
// How the loop waits is an option: a blocking epoll_wait on a thread of
// its own (Options.Lock, for a process with nothing else to run), or
// parked in the runtime's netpoller on the epoll set's readiness
// (Options.Park, for a process whose other goroutines need the CPU too).
// A one-second timerfd in the same set closes idle, stalled and
// unread-from connections (Options' Ticks) and runs Options.Tick.
//
// It is a measuring instrument, not a server to deploy: see BENCHMARKS.md
// ("An event-loop transport") for what it leaves out. Linux only, but for
// FrameRequest.
package evloop
