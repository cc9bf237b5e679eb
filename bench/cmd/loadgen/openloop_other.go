//go:build !linux

package main

import "time"

// haveOpenLoop says whether openLoop has an event loop of its own; off
// Linux the fixed schedule goes through the goroutines' loop (and Go's
// timers) instead.
const haveOpenLoop = false

func openLoop(addr, kind string, reqs []request, conns int, from, to time.Time, rate float64, more func() bool) []worker {
	panic("unreachable")
}
