//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// spinFor is how close a send must be for the loop to poll for it rather
// than sleep until it.
const spinFor = int64(200 * time.Microsecond)

// haveOpenLoop: see openloop_other.go.
const haveOpenLoop = true

// openLoop runs the fixed schedule of -rate on one OS thread with its own
// epoll loop, its connections' sockets and a timerfd in one epoll set: no
// Go timers and no Go netpoller between the schedule and the send.
//
// Go's netpoller waits in epoll_wait, whose timeout is in milliseconds, so
// a goroutine sleeping until a send time while the process is otherwise
// idle wakes up to ~1 ms late — and in an open loop the latency counts
// from the scheduled time, so that lateness was charged to the server (the
// no-op floor showed a p99 near 2 ms at 30,000/s). A timerfd armed at the
// next send time (CLOCK_MONOTONIC, absolute, nanoseconds) wakes the loop
// on time.
//
// The schedule is the one the goroutine loop keeps: each connection has
// its own, one request every conns/rate seconds, offset by its index, at
// most one request outstanding (a send whose time has passed leaves as
// soon as its connection's answer is in, and is charged from its
// scheduled time).
//
// A send due within spinFor is waited for by polling epoll without a
// timeout, so the generator's core is busy for the whole open loop
// (client_cpu near 1): a sleeping thread wakes late by the operating
// system's wake-up time, tens of microseconds in a virtual machine.
func openLoop(addr, kind string, reqs []request, conns int, from, to time.Time, rate float64, more func() bool) []worker {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ws := make([]worker, conns)
	fail := func(err error) []worker {
		ws[0].errors++
		ws[0].err = err
		return ws
	}

	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(ep)
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(tfd)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, tfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(conns)}); err != nil {
		return fail(err)
	}

	// Times are CLOCK_MONOTONIC nanoseconds; the window's ends are
	// converted once.
	now := func() int64 {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		return ts.Nano()
	}
	base, baseWall := now(), time.Now()
	mono := func(t time.Time) int64 { return base + int64(t.Sub(baseWall)) }
	fromNs, toNs := mono(from), mono(to)
	interval := int64(float64(conns) / rate * 1e9)

	type conn struct {
		fd   int
		next int64 // scheduled time of the next send
		sent int64 // scheduled time of the request in flight, 0 if none
		req  *request
		i    int // next probe
		buf  []byte
		done bool
	}
	cs := make([]conn, conns)
	for id := range cs {
		fd, err := dial(addr)
		if err != nil {
			return fail(err)
		}
		defer unix.Close(fd)
		c := &cs[id]
		c.fd, c.i = fd, id*len(reqs)/conns
		c.next = base + int64(id)*interval/int64(conns)
		c.buf = make([]byte, 0, 16<<10)
		ws[id].lat = make([]int64, 0, 1<<16)
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(id)}); err != nil {
			return fail(err)
		}
	}

	live := conns
	send := func(id int) {
		c := &cs[id]
		if c.next >= toNs {
			c.done = true
			live--
			return
		}
		c.req = &reqs[c.i%len(reqs)]
		c.i++
		c.sent = c.next
		c.next += interval
		if n, err := unix.Write(c.fd, c.req.raw); err != nil || n != len(c.req.raw) {
			ws[id].errors++
			ws[id].err = cmpErr(err, fmt.Errorf("short write: %d of %d bytes", n, len(c.req.raw)))
			c.done = true
			live--
		}
	}
	events := make([]unix.EpollEvent, conns+1)
	var tick [8]byte
	armed := int64(-1) // the timerfd's expiry
	for live > 0 {
		// Send every request whose time has come on an idle
		// connection, then sleep until the earliest one still to come.
		t := now()
		earliest := int64(-1)
		for id := range cs {
			c := &cs[id]
			if c.done || c.sent != 0 {
				continue
			}
			if c.next <= t {
				send(id)
				continue
			}
			if earliest < 0 || c.next < earliest {
				earliest = c.next
			}
		}
		if live == 0 {
			break
		}
		// A send due within spinFor is waited for by polling (the
		// generator has its core to itself): a sleeping thread's
		// wake-up is late by the operating system's wake-up time,
		// tens of microseconds in a virtual machine. A later one arms
		// the timerfd, unless it is armed for that time already.
		wait := -1
		switch {
		case earliest >= 0 && earliest-now() < spinFor:
			wait = 0
		case earliest >= 0 && earliest != armed:
			its := unix.ItimerSpec{Value: unix.NsecToTimespec(earliest)}
			if err := unix.TimerfdSettime(tfd, unix.TFD_TIMER_ABSTIME, &its, nil); err != nil {
				return fail(err)
			}
			armed = earliest
		}
		n, err := unix.EpollWait(ep, events, wait)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fail(err)
		}
		for _, ev := range events[:n] {
			id := int(ev.Fd)
			if id == conns {
				unix.Read(tfd, tick[:])
				continue
			}
			c := &cs[id]
			if c.done {
				continue
			}
			m, err := unix.Read(c.fd, c.buf[len(c.buf):cap(c.buf)])
			if err == unix.EAGAIN {
				continue
			}
			if err != nil || m == 0 {
				ws[id].errors++
				ws[id].err = cmpErr(err, errors.New("server closed the connection"))
				c.done = true
				live--
				continue
			}
			c.buf = c.buf[:len(c.buf)+m]
			status, body, used, err := parseResponse(c.buf)
			if err != nil {
				ws[id].errors++
				ws[id].err = err
				c.done = true
				live--
				continue
			}
			if used == 0 {
				if len(c.buf) == cap(c.buf) {
					c.buf = append(c.buf, 0)[:len(c.buf)] // grow for a longer answer
				}
				continue
			}
			t1 := now()
			if c.sent == 0 {
				ws[id].errors++
				ws[id].err = errors.New("an answer to no request")
				c.done = true
				live--
				continue
			}
			if got := verifyAnswer(kind, status, body); got != c.req.want {
				ws[id].wrong++
				if ws[id].err == nil {
					ws[id].err = fmt.Errorf("want %d, got status %d body %.200s", c.req.want, status, body)
				}
			}
			if c.sent >= fromNs && t1 < toNs && more() {
				ws[id].lat = append(ws[id].lat, t1-c.sent)
			}
			c.sent = 0
			c.buf = c.buf[:copy(c.buf, c.buf[used:])]
		}
	}
	return ws
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// dial connects a non-blocking socket to host:port or unix:PATH, with
// TCP_NODELAY on TCP as Go's net package sets it.
func dial(addr string) (int, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("connect %s: %w", addr, err)
		}
		return fd, unix.SetNonblock(fd, true)
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, err
	}
	ip4 := ta.IP.To4()
	if ip4 == nil {
		return -1, fmt.Errorf("%s: only IPv4 addresses in the open loop", addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ip4)
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, unix.SetNonblock(fd, true)
}

// parseResponse parses one HTTP/1.1 response with a Content-Length body
// at the start of b: used is how many bytes it took, 0 if b does not hold
// all of it yet.
func parseResponse(b []byte) (status int, body []byte, used int, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, nil, 0, nil
	}
	line, rest, _ := bytes.Cut(b[:end+2], []byte("\r\n"))
	if status, err = parseStatus(line); err != nil {
		return 0, nil, 0, err
	}
	length := -1
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if err := parseHeader(h, &length); err != nil {
			return 0, nil, 0, err
		}
	}
	if length < 0 {
		return 0, nil, 0, errNoLength
	}
	start := end + 4
	if len(b) < start+length {
		return 0, nil, 0, nil
	}
	return status, b[start : start+length], start + length, nil
}
