package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConns is the default limit on open connections per listener.
const DefaultMaxConns = 10000

// limitListener hands out at most max open connections. One beyond that
// is answered at once with 503 UNAVAILABLE and a JSON body, and closed: a
// flood of connections then costs neither file descriptors nor memory
// without bound, and its clients learn why they were turned away.
type limitListener struct {
	net.Listener
	max      int64
	open     atomic.Int64
	rejected *atomic.Uint64
}

// rejectResponse is the whole answer to a connection over the limit.
var rejectResponse = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nRetry-After: 1\r\n" +
	"Content-Length: 98\r\n\r\n" +
	`{"error":{"code":"UNAVAILABLE","message":"too many open connections; retry with fewer or later"}}` + "\n")

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.rejected.Add(1)
		go reject(c)
	}
}

// reject answers c with rejectResponse and closes it. It reads what the
// client sent first (briefly), so that closing does not reset the
// connection before the client has read the answer.
func reject(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	var buf [4096]byte
	c.Read(buf[:])
	if _, err := c.Write(rejectResponse); err != nil {
		return
	}
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
