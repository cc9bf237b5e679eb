package evloop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Handler answers requests for a Loop. All its methods run on the loop's
// goroutine, one at a time.
type Handler interface {
	// Open is called once for each accepted connection.
	Open(c *Conn)
	// Serve answers every complete request at the start of in, appending
	// the answers to out. It returns how many bytes of in it used (an
	// incomplete request at the end is left for the next call, with more
	// bytes), the new out, and whether to close the connection once out
	// is written. eof says that no more bytes will come.
	Serve(c *Conn, in, out []byte, eof bool) (used int, out2 []byte, close bool)
	// Closed is called once when the connection is closed.
	Closed(c *Conn)
}

// Conn is one accepted connection.
type Conn struct {
	fd    int
	in    []byte // bytes read and not yet used by the handler
	out   []byte // answers not yet written
	close bool   // close once out is written
	// writing: out is pending and the connection waits for EPOLLOUT
	// (and is not read meanwhile).
	writing bool
	// last is the loop's tick count when the connection last made
	// progress (a read or a write).
	last int64
	// Local and Remote are the connection's addresses: *net.TCPAddr, or
	// *net.UnixAddr for a Unix-domain socket.
	Local, Remote net.Addr
	// User is the handler's own state for the connection.
	User any
}

// Options tunes a Loop.
type Options struct {
	// MaxIn is the most bytes a connection may hold unused (an incomplete
	// request); past it the connection is closed. Default 72 KiB
	// (keygate's 8 KiB header limit plus its 64 KiB body limit).
	MaxIn int
	// IdleTicks closes a connection with nothing unanswered after this
	// many ticks without a read; ReadTicks one holding an incomplete
	// request, and WriteTicks one whose answers the peer does not read.
	// 0: never.
	IdleTicks, ReadTicks, WriteTicks int64
	// Tick, if set, runs on the loop every second.
	Tick func()
	// Lock locks the loop's goroutine to its thread.
	Lock bool
	// Yield lets the process's other goroutines run between batches: after
	// each batch of events the loop calls runtime.Gosched and polls again
	// without blocking, and only when that finds nothing does it block
	// in epoll_wait. Without it, with one P, a goroutine that needs the
	// CPU (keygate's usage-log writer) runs only when the loop blocks or
	// is preempted, every 10 ms. Gosched of a goroutine locked to its
	// thread hands the P to another thread and back, so Yield is for a
	// loop without Lock.
	Yield bool
	// Park waits in the runtime's netpoller instead of in a blocking
	// epoll_wait: the loop polls its set without blocking and, when that
	// finds nothing, parks on the set's readiness like any goroutine on a
	// socket (one park and wake-up per idle period, not per connection).
	// A blocking epoll_wait holds the thread in a system call, and the
	// scheduler hands the P between it and the process's other goroutines
	// through other threads (sysmon's retake): keygate with Yield at
	// 15,000 requests/s had a p50 of 0.06-38 ms (BENCHMARKS.md). Park
	// yields between batches as Yield does; not with Lock.
	Park bool
}

// Loop is one epoll loop over a set of listeners.
type Loop struct {
	ep      int
	timer   int
	lns     map[int]string // listener fd -> "tcp" or "unix"
	conns   []*Conn        // by fd
	h       Handler
	opt     Options
	ticks   int64
	stopFd  int
	stopped bool
	// parkFile is the duplicate of ep the runtime's netpoller watches
	// (Options.Park).
	parkFile *os.File
}

// New returns a loop over listeners on addrs: host:port for TCP, or
// unix:PATH for a Unix-domain socket (an old socket file is removed).
func New(h Handler, opt Options, addrs ...string) (*Loop, error) {
	if opt.MaxIn == 0 {
		opt.MaxIn = 72 << 10
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &Loop{ep: ep, lns: map[int]string{}, h: h, opt: opt}
	for _, a := range addrs {
		fd, network, err := listen(a)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("listening on %s: %w", a, err)
		}
		l.lns[fd] = network
		if err := l.add(fd, unix.EPOLLIN); err != nil {
			l.Close()
			return nil, err
		}
	}
	l.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		l.Close()
		return nil, err
	}
	sec := unix.Timespec{Sec: 1}
	if err := unix.TimerfdSettime(l.timer, 0, &unix.ItimerSpec{Interval: sec, Value: sec}, nil); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.add(l.timer, unix.EPOLLIN); err != nil {
		l.Close()
		return nil, err
	}
	if l.stopFd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.add(l.stopFd, unix.EPOLLIN); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func listen(addr string) (fd int, network string, err error) {
	var sa unix.Sockaddr
	domain := unix.AF_INET
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		os.Remove(path)
		sa, domain, network = &unix.SockaddrUnix{Name: path}, unix.AF_UNIX, "unix"
	} else {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return -1, "", err
		}
		if !ap.Addr().IsLoopback() {
			return -1, "", errors.New("evloop listens on loopback addresses only")
		}
		network = "tcp"
		if ap.Addr().Is4() {
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
		} else {
			sa, domain = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, unix.AF_INET6
		}
	}
	fd, err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	if network == "tcp" {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if err = unix.Bind(fd, sa); err == nil {
		err = unix.Listen(fd, 4096)
	}
	if err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	return fd, network, nil
}

func (l *Loop) add(fd int, ev uint32) error {
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)})
}

func (l *Loop) mod(fd int, ev uint32) error {
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)})
}

// Stop makes Run return; it may be called from any goroutine.
func (l *Loop) Stop() {
	var one = [8]byte{1}
	unix.Write(l.stopFd, one[:])
}

// Close closes the listeners, every connection and the epoll set.
func (l *Loop) Close() {
	for fd, c := range l.conns {
		if c != nil {
			l.closeConn(fd)
		}
	}
	for fd := range l.lns {
		unix.Close(fd)
	}
	if l.parkFile != nil {
		l.parkFile.Close()
	}
	for _, fd := range []int{l.timer, l.stopFd, l.ep} {
		if fd > 0 {
			unix.Close(fd)
		}
	}
}

// Run serves until Stop, then closes everything.
func (l *Loop) Run() error {
	if l.opt.Lock {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	defer l.Close()
	events := make([]unix.EpollEvent, 256)
	wait, err := l.waiter(events)
	if err != nil {
		return err
	}
	for !l.stopped {
		n, err := wait()
		if err != nil {
			return err
		}
		for i := range n {
			ev := &events[i]
			fd := int(ev.Fd)
			if fd < len(l.conns) && l.conns[fd] != nil {
				l.serve(l.conns[fd], ev.Events)
				continue
			}
			switch {
			case fd == l.timer:
				l.tick()
			case fd == l.stopFd:
				l.stopped = true
			default:
				if network, ok := l.lns[fd]; ok {
					l.accept(fd, network)
				}
			}
		}
		if l.opt.Yield || l.opt.Park {
			runtime.Gosched()
		}
	}
	return nil
}

// waiter returns what waits for the next events, as the options say.
func (l *Loop) waiter(events []unix.EpollEvent) (func() (int, error), error) {
	switch {
	case l.opt.Park:
		// The epoll set is itself pollable: the runtime's netpoller
		// watches a duplicate of it, and the loop parks there, as any
		// goroutine waiting on a socket does, once a poll finds nothing.
		d, err := unix.Dup(l.ep)
		if err != nil {
			return nil, err
		}
		if err := unix.SetNonblock(d, true); err != nil {
			unix.Close(d)
			return nil, err
		}
		f := os.NewFile(uintptr(d), "epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			return nil, err
		}
		l.parkFile = f
		return func() (n int, err error) {
			for {
				rerr := rc.Read(func(uintptr) bool {
					n, err = unix.EpollWait(l.ep, events, 0)
					return n > 0 || (err != nil && err != unix.EINTR)
				})
				if rerr != nil {
					return 0, rerr
				}
				if err == nil || err != unix.EINTR {
					return n, err
				}
			}
		}, nil
	case l.opt.Yield:
		timeout := 0
		return func() (int, error) {
			for {
				n, err := unix.EpollWait(l.ep, events, timeout)
				switch {
				case err == unix.EINTR:
					continue
				case err != nil:
					return 0, err
				case n > 0:
					timeout = 0
					return n, nil
				case timeout == 0:
					// Nothing now: let the others run, then block.
					runtime.Gosched()
					timeout = -1
				}
			}
		}, nil
	}
	return func() (int, error) {
		for {
			n, err := unix.EpollWait(l.ep, events, -1)
			if err != unix.EINTR {
				return n, err
			}
		}
	}, nil
}

func (l *Loop) tick() {
	var b [8]byte
	unix.Read(l.timer, b[:])
	l.ticks++
	if l.opt.Tick != nil {
		l.opt.Tick()
	}
	for fd, c := range l.conns {
		if c == nil {
			continue
		}
		idle := l.ticks - c.last
		switch {
		case c.writing:
			if l.opt.WriteTicks > 0 && idle >= l.opt.WriteTicks {
				l.closeConn(fd)
			}
		case len(c.in) > 0:
			if l.opt.ReadTicks > 0 && idle >= l.opt.ReadTicks {
				l.closeConn(fd)
			}
		default:
			if l.opt.IdleTicks > 0 && idle >= l.opt.IdleTicks {
				l.closeConn(fd)
			}
		}
	}
}

func (l *Loop) accept(lfd int, network string) {
	for {
		fd, sa, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or a failure the next readiness retries
		}
		c := &Conn{fd: fd, in: make([]byte, 0, 4<<10), last: l.ticks}
		if network == "unix" {
			c.Local, c.Remote = &net.UnixAddr{Net: "unix"}, &net.UnixAddr{Net: "unix"}
		} else {
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			c.Remote = tcpAddr(sa)
			if la, err := unix.Getsockname(fd); err == nil {
				c.Local = tcpAddr(la)
			}
		}
		if err := l.add(fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
			unix.Close(fd)
			continue
		}
		for fd >= len(l.conns) {
			l.conns = append(l.conns, nil)
		}
		l.conns[fd] = c
		l.h.Open(c)
	}
}

func tcpAddr(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

func (l *Loop) closeConn(fd int) {
	if fd >= len(l.conns) || l.conns[fd] == nil {
		return
	}
	c := l.conns[fd]
	l.conns[fd] = nil
	unix.Close(fd) // also removes it from the epoll set
	l.h.Closed(c)
}

// serve handles one readiness of c.
func (l *Loop) serve(c *Conn, ev uint32) {
	if c.writing {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.flush(c)
		}
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		return
	}
	if len(c.in) == cap(c.in) {
		if cap(c.in) >= l.opt.MaxIn {
			l.closeConn(c.fd) // the handler would not take what it holds
			return
		}
		c.in = append(c.in, make([]byte, min(cap(c.in), l.opt.MaxIn-cap(c.in)))...)[:len(c.in)]
	}
	n, err := unix.Read(c.fd, c.in[len(c.in):cap(c.in)])
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if err != nil {
		l.closeConn(c.fd)
		return
	}
	eof := n == 0
	c.in = c.in[:len(c.in)+n]
	c.last = l.ticks
	if len(c.in) > 0 {
		used, out, cl := l.h.Serve(c, c.in, c.out, eof)
		c.out = out
		c.close = c.close || cl
		if used == len(c.in) {
			c.in = c.in[:0]
		} else if used > 0 {
			c.in = c.in[:copy(c.in, c.in[used:])]
		}
	}
	if eof {
		c.close = true
	}
	l.flush(c)
}

// flush writes what c has pending: once, and on a short write it waits
// for EPOLLOUT before reading again.
func (l *Loop) flush(c *Conn) {
	if len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			l.closeConn(c.fd)
			return
		}
		if n > 0 {
			c.last = l.ticks
			if n == len(c.out) {
				c.out = c.out[:0]
			} else {
				c.out = c.out[:copy(c.out, c.out[n:])]
			}
		}
	}
	switch {
	case len(c.out) > 0:
		if !c.writing {
			c.writing = true
			if l.mod(c.fd, unix.EPOLLOUT) != nil {
				l.closeConn(c.fd)
			}
		}
	case c.close:
		l.closeConn(c.fd)
	case c.writing:
		c.writing = false
		if l.mod(c.fd, unix.EPOLLIN|unix.EPOLLRDHUP) != nil {
			l.closeConn(c.fd)
		}
	}
}
