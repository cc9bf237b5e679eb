package server

import (
	"encoding/json"
	"fmt"
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

// rejectResponse is the whole answer to a connection over the limit; its
// body comes from the one place that writes error bodies.
var rejectResponse = func() []byte {
	_, body := errorResponse(errorf(ErrUnavailable, "too many open connections; retry with fewer or later"))
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	b = append(b, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nRetry-After: 1\r\n"+
		"Content-Length: %d\r\n\r\n%s", len(b), b)
}()

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

// lingerTime bounds how long a closed connection is drained.
const lingerTime = 500 * time.Millisecond

// limitConn gives its slot back when closed.
//
// Close lingers: it sends FIN and reads (discarding) what the client still
// sends, for up to lingerTime, before closing. When the server refuses a
// request mid-way (431, 413) the client may still be writing it; closing
// outright with unread data makes the kernel send a reset, and the client
// sees "connection reset" instead of the answer. The slot is held until
// the socket is really closed, so MaxConns bounds descriptors too.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		cw, ok := c.Conn.(interface{ CloseWrite() error })
		if !ok || cw.CloseWrite() != nil {
			c.Conn.Close()
			c.l.open.Add(-1)
			return
		}
		go func() {
			c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			var buf [4096]byte
			for {
				if _, err := c.Conn.Read(buf[:]); err != nil {
					break
				}
			}
			c.Conn.Close()
			c.l.open.Add(-1)
		}()
	})
	return nil
}
