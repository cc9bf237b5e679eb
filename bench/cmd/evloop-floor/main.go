//go:build linux

package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate/keygate/bench/internal/evloop"
)

// body is noop-floor's.
var body = []byte(`{"allowed":true,"key_id":"key_AAAAAAAAAAAAAAAA","key_name":"bench-123","entry_id":"ent_AAAAAAAAAAAAAAAA"}`)

const (
	maxHeader = 8 << 10  // keygate's MaxHeaderBytes default
	maxBody   = 64 << 10 // keygate's MaxBodyBytes default
)

// answers holds the fixed answers for the current second (their Date
// header changes once a second).
type answers struct{ p atomic.Pointer[fixed] }

// fixed is one second's answers: 200 keep-alive, 200 with Connection:
// close, and HEAD's (no body).
type fixed struct{ keep, close, hd []byte }

func (a *answers) update(now time.Time) {
	date := now.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")
	build := func(conn string, withBody bool) []byte {
		b := []byte("HTTP/1.1 200 OK\r\nServer: keygate\r\nDate: ")
		b = append(b, date...)
		b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: 105\r\nCache-Control: no-store\r\n"...)
		b = append(b, conn...)
		b = append(b, "\r\n"...)
		if withBody {
			b = append(b, body...)
		}
		return b
	}
	a.p.Store(&fixed{build("", true), build("Connection: close\r\n", true), build("", false)})
}

// errorAnswer is the answer to a request that cannot be framed.
func errorAnswer(status int) []byte {
	text := map[int]string{400: "400 Bad Request", 413: "413 Request Entity Too Large", 431: "431 Request Header Fields Too Large", 501: "501 Not Implemented"}[status]
	return []byte("HTTP/1.1 " + text + "\r\nServer: keygate\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

// serve answers every complete request at the start of in (see
// evloop.Handler.Serve).
func (a *answers) serve(in, out []byte, eof bool) (used int, _ []byte, close bool) {
	ans := a.p.Load()
	for used < len(in) {
		f, ok, err := evloop.FrameRequest(in[used:], maxHeader, maxBody)
		if err != nil {
			return len(in), append(out, errorAnswer(evloop.Status(err))...), true
		}
		if !ok {
			if eof {
				return len(in), append(out, errorAnswer(400)...), true
			}
			break
		}
		used += f.Len
		switch {
		case f.Close:
			return len(in), append(out, ans.close...), true
		case f.Head:
			out = append(out, ans.hd...)
		default:
			out = append(out, ans.keep...)
		}
	}
	return used, out, false
}

type loopHandler struct{ a *answers }

func (loopHandler) Open(*evloop.Conn)   {}
func (loopHandler) Closed(*evloop.Conn) {}
func (h loopHandler) Serve(_ *evloop.Conn, in, out []byte, eof bool) (int, []byte, bool) {
	return h.a.serve(in, out, eof)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "TCP listen address (loopback)")
	sock := flag.String("unix", "", "also listen on this Unix-domain socket")
	useGnet := flag.Bool("gnet", false, "serve on gnet v2's event loop instead of the hand-written one")
	lock := flag.Bool("lock", true, "lock the loop's goroutine to its thread")
	yield := flag.Bool("yield", false, "yield to other goroutines between batches (evloop.Options.Yield; needs -lock=false)")
	park := flag.Bool("park", false, "wait in the runtime's netpoller (evloop.Options.Park; needs -lock=false)")
	flag.Parse()
	a := &answers{}
	a.update(time.Now())
	addrs := []string{*addr}
	if *sock != "" {
		addrs = append(addrs, "unix:"+*sock)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	if *useGnet {
		stop, err := runGnet(a, addrs)
		if err != nil {
			log.Fatal(err)
		}
		<-sig
		stop()
		return
	}
	l, err := evloop.New(loopHandler{a}, evloop.Options{Lock: *lock, Yield: *yield && !*lock, Park: *park && !*lock, IdleTicks: 60, ReadTicks: 10, WriteTicks: 10,
		Tick: func() { a.update(time.Now()) }}, addrs...)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run() }()
	select {
	case <-sig:
		l.Stop()
		<-done
	case err := <-done:
		log.Fatal(err)
	}
}
